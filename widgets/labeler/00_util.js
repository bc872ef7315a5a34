// 00_util.js: DOM, time, key and colour helpers shared by every part of the labeler.
// Top-level declarations only (the module is the concatenation of this folder's .js files).

/** Create an element: utilEl("div", "de-x de-y", "text"). `text` is set as textContent. */
function utilEl(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** Clamp `value` into [lo, hi] (NaN becomes lo). */
function utilClamp(value, lo, hi) {
  if (!(value >= lo)) return lo;
  return value > hi ? hi : value;
}

function utilPad(value, width) {
  return String(value).padStart(width, "0");
}

/** Digits used for the frame-within-second part: 2 up to 100 fps, more above. */
function utilFrameDigits(fps) {
  return Math.max(2, String(Math.max(0, Math.ceil(fps) - 1)).length);
}

/**
 * A frame index as "mm:ss.ff" (ff: the frame within its second, zero padded), or
 * "h:mm:ss.ff" from one hour on. Negative frames get a leading "-"; a missing frame "--:--.--".
 */
function utilFormatTime(frame, fps) {
  if (frame === null || frame === undefined || !Number.isFinite(frame) || !(fps > 0)) return "--:--.--";
  const sign = frame < 0 ? "-" : "";
  const whole = Math.floor(Math.abs(frame));
  const totalSeconds = Math.floor((whole + 1e-6) / fps);
  const withinSecond = Math.max(0, Math.floor(whole - totalSeconds * fps + 1e-6));
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  const ff = utilPad(withinSecond, utilFrameDigits(fps));
  if (hours > 0) return `${sign}${hours}:${utilPad(minutes, 2)}:${utilPad(seconds, 2)}.${ff}`;
  return `${sign}${utilPad(minutes, 2)}:${utilPad(seconds, 2)}.${ff}`;
}

/**
 * Parse what utilFormatTime writes ("mm:ss.ff", "h:mm:ss.ff", "ss.ff", "ss") back to a frame
 * index. A plain "#123" or "f123" is a frame number. Throws an Error naming the accepted forms.
 */
function utilParseTime(text, fps) {
  const value = String(text).trim();
  const frameForm = /^(?:#|f)(\d+)$/i.exec(value);
  if (frameForm) return Number(frameForm[1]);
  const match = /^(?:(?:(\d+):)?(\d{1,2}):)?(\d{1,2})(?:\.(\d+))?$/.exec(value);
  if (!match || !(fps > 0)) {
    throw new Error(`"${value}" is not a time: write mm:ss.ff (e.g. 01:23.15), h:mm:ss.ff, or #frame`);
  }
  const [, h, m, s, ff] = match;
  const seconds = Number(h || 0) * 3600 + Number(m || 0) * 60 + Number(s);
  const within = Number(ff || 0);
  if ((m !== undefined || h !== undefined) && Number(s) >= 60) throw new Error(`"${value}": seconds must be below 60`);
  if (within >= Math.ceil(fps)) throw new Error(`"${value}": the frame part must be below ${Math.ceil(fps)}`);
  return Math.round(seconds * fps) + within;
}

/** A duration in seconds for lists: "0:42", "12:05", "1:02:05". */
function utilFormatDuration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${utilPad(m, 2)}:${utilPad(s, 2)}` : `${m}:${utilPad(s, 2)}`;
}

const UTIL_KEY_ALIASES = {
  " ": "Space", Spacebar: "Space", Esc: "Escape", Del: "Delete",
  Left: "ArrowLeft", Right: "ArrowRight", Up: "ArrowUp", Down: "ArrowDown",
};
const UTIL_MODIFIER_KEYS = new Set(["Shift", "Control", "Alt", "Meta", "AltGraph", "CapsLock", "OS", "Fn"]);

/**
 * The name of a keydown as the `shortcuts` trait writes it: "Space", "ArrowLeft", "i",
 * "Shift+ArrowRight", "Ctrl+Shift+z", "?", "Ctrl++". Modifiers come in the order Ctrl, Alt,
 * Shift; Cmd (Meta) counts as Ctrl. Letters are lower case, with "Shift+" when Shift is held;
 * other printable characters ("?", "+", "]") are named by themselves, never with "Shift+" (it is
 * implied, and differs between keyboard layouts). With Alt, letters and digits are named by the
 * physical key ("Alt+Shift+1"), since Alt changes the character typed.
 * Returns "" for a lone modifier or a dead key.
 */
function utilKeyName(event) {
  let key = event.key;
  if (!key || key === "Dead" || key === "Unidentified" || UTIL_MODIFIER_KEYS.has(key)) return "";
  key = UTIL_KEY_ALIASES[key] || key;
  const ctrl = event.ctrlKey || event.metaKey;
  const alt = event.altKey;
  let shift = event.shiftKey;
  if (key.length === 1) {
    // Alt (Option on a Mac) changes the character: name the physical key instead.
    let physical = null;
    if (alt && event.code) {
      physical = /^(?:Key([A-Z])|Digit(\d))$/.exec(event.code);
      if (physical) key = (physical[1] || physical[2]).toLowerCase();
    }
    if (/^[a-zA-Z]$/.test(key)) {
      key = key.toLowerCase();
    } else if (!physical) {
      shift = false; // "?" is Shift+/ on one layout and something else on another: name the character.
    }
  }
  const parts = [];
  if (ctrl) parts.push("Ctrl");
  if (alt) parts.push("Alt");
  if (shift) parts.push("Shift");
  parts.push(key);
  return parts.join("+");
}

/** True when a key event comes from a text field (the app's shortcuts must not fire there). */
function utilIsTextTarget(target) {
  if (!target || !target.tagName) return false;
  const tag = target.tagName.toLowerCase();
  if (tag === "textarea" || tag === "select") return true;
  if (target.isContentEditable) return true;
  if (tag !== "input") return false;
  const type = (target.type || "text").toLowerCase();
  return !["button", "checkbox", "radio", "range", "submit", "reset", "color", "file"].includes(type);
}

/**
 * A tiny event emitter: on(name, fn) returns the unsubscribe function; emit(name, payload) calls
 * the listeners in order. A throwing listener is logged and does not stop the others.
 */
function utilEmitter() {
  const listeners = new Map();
  return {
    on(name, fn) {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(fn);
      return () => this.off(name, fn);
    },
    off(name, fn) {
      const set = listeners.get(name);
      if (set) set.delete(fn);
    },
    emit(name, payload) {
      const set = listeners.get(name);
      if (!set) return;
      for (const fn of [...set]) {
        try {
          fn(payload);
        } catch (err) {
          console.error(`deepepil: a "${name}" listener failed`, err);
        }
      }
    },
    clear() {
      listeners.clear();
    },
  };
}

// Okabe & Ito (2008) colour-blind-safe palette; black replaced by grey so it reads on dark themes.
const UTIL_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#999999"];
let utilRegionOrder = [];

/** Tell utilRegionColor the vocabulary's region order (main.js does, from the `vocabulary` trait). */
function utilSetRegionOrder(regions) {
  utilRegionOrder = Array.isArray(regions) ? regions.slice() : [];
}

/**
 * The colour of a body region: by its place in the vocabulary (so the seed regions get distinct
 * colours), else by a stable hash of its name. Always one of UTIL_PALETTE.
 */
function utilRegionColor(region) {
  const index = utilRegionOrder.indexOf(region);
  if (index >= 0) return UTIL_PALETTE[index % UTIL_PALETTE.length];
  let hash = 0;
  for (const ch of String(region)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return UTIL_PALETTE[hash % UTIL_PALETTE.length];
}

/** Call `fn` at most once per `ms`, always with the latest arguments (trailing call kept). */
function utilThrottle(fn, ms) {
  let last = 0;
  let timer = null;
  let pending = null;
  const run = () => {
    timer = null;
    last = Date.now();
    const args = pending;
    pending = null;
    fn(...args);
  };
  const throttled = (...args) => {
    pending = args;
    if (timer) return;
    const wait = Math.max(0, ms - (Date.now() - last));
    timer = setTimeout(run, wait);
  };
  throttled.cancel = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    pending = null;
  };
  return throttled;
}
