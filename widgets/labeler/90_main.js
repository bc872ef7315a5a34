// 90_main.js: the app's frame. Builds the context every part receives (README "The context
// object"), keeps ctx.labels current, shows the screen named by the `screen` trait, creates the
// player and the timeline for an open recording, and maps keys to actions.

const MAIN_TIMEOUT_MS = { default: 30000, open: 600000, frames: 20000 };
const MAIN_FRAME_SYNC_MS = 50;  // 20/s: the 3D view (deepepil.ui.pointcloud) follows playback by the `frame` trait
const MAIN_TABLES = ["mois", "suggestions", "seizures", "keypoints"];

function mainRequestTimeoutMs(content) {
  return MAIN_TIMEOUT_MS[content && content.type] || MAIN_TIMEOUT_MS.default;
}

/** Replace the label maps with `labels` ({mois, suggestions, seizures, keypoints} lists of rows). */
function mainResetLabels(ctx, labels) {
  const full = {};
  for (const table of MAIN_TABLES) {
    ctx.labels[table].clear();
    const rows = (labels && Array.isArray(labels[table])) ? labels[table] : [];
    for (const row of rows) ctx.labels[table].set(row.id, row);
    full[table] = rows;
  }
  ctx.bus.emit("labels", { changes: full, reset: true });
}

/**
 * Apply `changes` ({mois: [rows], mois_removed: [ids], ...}) to ctx.labels and emit "labels".
 * A row older than the one held (smaller version) is ignored: replies can cross.
 */
function mainApplyChanges(ctx, changes) {
  if (!changes) return false;
  let touched = false;
  for (const table of MAIN_TABLES) {
    const map = ctx.labels[table];
    for (const row of changes[table] || []) {
      const held = map.get(row.id);
      if (held && held.version !== undefined && row.version !== undefined && row.version < held.version) continue;
      map.set(row.id, row);
      touched = true;
    }
    for (const id of changes[`${table}_removed`] || []) {
      touched = map.delete(id) || touched;
    }
  }
  if (!touched) return false;
  const sel = ctx.state.selection;
  if (sel) {
    const table = { moi: "mois", suggestion: "suggestions", seizure: "seizures", keypoint: "keypoints" }[sel.kind];
    if (table && !ctx.labels[table].has(sel.id)) ctx.select(null);
  }
  ctx.bus.emit("labels", { changes });
  return true;
}

/** Build the context object (README) around `model`. Returns {ctx, dispose}. */
function mainCreateContext(model) {
  const bus = utilEmitter();
  const pending = new Map(); // req -> {resolve, reject, timer, content}
  let reqCounter = 0;
  const session = Math.random().toString(36).slice(2, 8);

  const ctx = {
    model,
    bus,
    actions: {},
    state: { frame: 0, playing: false, rate: 1.0, loop: null, selection: null, recording: null },
    labels: { mois: new Map(), suggestions: new Map(), seizures: new Map(), keypoints: new Map() },
    seek(frame, source = "seek") {
      const rec = ctx.state.recording;
      const last = rec && rec.n_frames > 0 ? rec.n_frames - 1 : 0;
      const clamped = utilClamp(Math.round(Number(frame)), 0, last);
      ctx.state.frame = clamped;
      bus.emit("frame", { frame: clamped, source });
      return clamped;
    },
    select(selection) {
      const prev = ctx.state.selection;
      const same = (prev === selection) || (prev && selection && prev.kind === selection.kind && prev.id === selection.id);
      ctx.state.selection = selection || null;
      if (!same) bus.emit("select", { selection: ctx.state.selection });
    },
    request(content, buffers, options) {
      const req = `${session}-${++reqCounter}`;
      const message = { ...content, req };
      const timeoutMs = (options && options.timeout_ms) || mainRequestTimeoutMs(content);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(req);
          const what = content && content.type ? `"${content.type}"${content.op ? ` (${content.op})` : ""}` : "a request";
          reject(new Error(`No answer from the kernel to ${what} after ${Math.round(timeoutMs / 1000)} s: `
            + "the kernel may be busy, restarting or stopped. Check the notebook's kernel status."));
        }, timeoutMs);
        pending.set(req, { resolve, reject, timer, content: message });
        try {
          model.send(message, undefined, buffers || []);
        } catch (err) {
          clearTimeout(timer);
          pending.delete(req);
          reject(new Error(`Could not send ${content && content.type} to the kernel: ${err.message || err}`));
        }
      });
    },
    async edit(op, args) {
      const reply = await ctx.request({ type: "edit", op, args: args || {} });
      return reply.content;
    },
    notify(level, text) {
      console.log(`deepepil ${level}: ${text}`); // replaced by the shell's popups once it is built
    },
  };

  /** Handle a reply to an edit: apply its changes, show a conflict or an error. */
  function onEditResult(content, request) {
    mainApplyChanges(ctx, content.changes);
    if (content.ok || !content.error) return;
    const error = content.error;
    if (error.kind === "conflict") {
      bus.emit("conflict", { request: request ? request.content : null, error });
    } else if (error.kind === "offline") {
      // The same popup as the kernel's "cannot be reached" notice: one per incident, updated.
      ctx.notify("error", error.message || "The label database cannot be reached.", { key: "offline" });
    } else {
      ctx.notify("error", error.message || `The edit failed (${error.kind || "error"}).`);
    }
  }

  function onMessage(content, buffers) {
    if (!content || typeof content !== "object") return;
    const entry = content.req !== undefined ? pending.get(content.req) : undefined;
    if (entry) {
      pending.delete(content.req);
      clearTimeout(entry.timer);
    }
    if (content.type === "edit_result") {
      onEditResult(content, entry);
    } else if (content.type === "labels_changed") {
      mainApplyChanges(ctx, content.changes);
    } else if (content.type === "notify") {
      const level = content.level || "info";
      // While the database is unreachable its notices share one popup (see onEditResult). A custom
      // message can overtake the trait update sent before it, hence the text as well as the status.
      const offline = level !== "info" && (((model.get("status") || {}).state === "offline")
        || /label database cannot be reached/i.test(content.text || ""));
      ctx.notify(level, content.text || "", offline ? { key: "offline" } : undefined);
    }
    if (entry) entry.resolve({ content, buffers: buffers || [] });
  }
  model.on("msg:custom", onMessage);

  // The model's `frame` follows every playhead change in the browser (a local change:frame event that
  // other widgets on the page, such as the 3D view's playhead bridge, may follow), and the kernel is
  // told at most 20 times a second (MAIN_FRAME_SYNC_MS).
  const syncFrame = utilThrottle(() => {
    try {
      model.save_changes();
    } catch (err) {
      console.warn("deepepil: could not sync the frame trait", err);
    }
  }, MAIN_FRAME_SYNC_MS);
  const offFrame = bus.on("frame", ({ frame }) => {
    try {
      model.set("frame", frame);
    } catch (err) {
      console.warn("deepepil: could not set the frame trait", err);
      return;
    }
    syncFrame();
  });

  function dispose() {
    offFrame();
    syncFrame.cancel();
    model.off("msg:custom", onMessage);
    for (const [, entry] of pending) {
      clearTimeout(entry.timer);
      entry.reject(new Error("The app was closed before the kernel answered."));
    }
    pending.clear();
    bus.clear();
  }
  return { ctx, dispose };
}

/** Keys -> actions from the `shortcuts` trait ({action: key or [keys]}). */
function mainKeyMap(shortcuts) {
  const byKey = new Map();
  for (const [action, keys] of Object.entries(shortcuts || {})) {
    for (const key of Array.isArray(keys) ? keys : [keys]) {
      if (key) byKey.set(key, action);
    }
  }
  return byKey;
}

/** The app's keydown handler: returns the listener to attach to the app root. */
function mainKeyHandler(ctx, root, shell) {
  let keyMap = mainKeyMap(ctx.model.get("shortcuts"));
  const onShortcuts = () => { keyMap = mainKeyMap(ctx.model.get("shortcuts")); };
  ctx.model.on("change:shortcuts", onShortcuts);

  function onKeyDown(event) {
    const name = utilKeyName(event);
    if (!name) return;
    const plain = !event.ctrlKey && !event.metaKey && !event.altKey;
    if (utilIsTextTarget(event.target)) {
      // Typing goes to the field; only Escape leaves it. Plain keys must not reach JupyterLab's
      // notebook command mode either (a stray "d d" deletes a cell there).
      if (name === "Escape") {
        event.target.blur();
        root.focus({ preventScroll: true });
        event.preventDefault();
        event.stopPropagation();
      } else if (plain) {
        event.stopPropagation();
      }
      return;
    }
    // Buttons and links keep Enter/Space for their own activation.
    const tag = event.target && event.target.tagName ? event.target.tagName.toLowerCase() : "";
    if ((tag === "button" || tag === "a" || event.target.getAttribute?.("role") === "button")
        && (name === "Enter" || name === "Space")) {
      event.stopPropagation();
      return;
    }
    let action = keyMap.get(name);
    if (action && shell && shell.modalOpen() && !["escape", "help"].includes(action)) action = undefined;
    const fn = action ? ctx.actions[action] : undefined;
    if (typeof fn === "function") {
      event.preventDefault();
      event.stopPropagation();
      try {
        const result = fn(event);
        if (result && typeof result.catch === "function") {
          result.catch((err) => ctx.notify("error", `${action}: ${err.message || err}`));
        }
      } catch (err) {
        console.error(`deepepil: action ${action} failed`, err);
        ctx.notify("error", `${action}: ${err.message || err}`);
      }
      return;
    }
    // An unhandled plain key stays with the app: it must not become a notebook command.
    if (plain && name !== "Tab" && name !== "Shift+Tab") event.stopPropagation();
  }
  return { onKeyDown, dispose: () => ctx.model.off("change:shortcuts", onShortcuts) };
}

/** Create the player, the timeline, the joints and the explanations (on the player's views) of the open recording. */
function mainCreateParts(ctx) {
  const parts = {};
  const make = (name, factory) => {
    try {
      parts[name] = factory(ctx);
    } catch (err) {
      console.error(`deepepil: could not create the ${name}`, err);
      ctx.notify("error", `The ${name} failed to start: ${err.message || err}`);
    }
  };
  if (typeof createPlayer === "function") make("player", createPlayer);
  if (typeof createTimeline === "function") make("timeline", createTimeline);
  // After the timeline: the joints handle delete_selected for a selected keypoint and pass the rest on.
  if (typeof createJoints === "function" && parts.player) make("joints", (c) => createJoints(c, parts.player));
  // After the joints: its overlay goes in right above the canvas, so the joints stay on top.
  if (typeof createExplain === "function" && parts.player) make("explain", (c) => createExplain(c, parts.player));
  return parts;
}

export default {
  render({ model, el }) {
    const root = utilEl("div", "de-app");
    root.tabIndex = 0;
    root.setAttribute("role", "application");
    root.setAttribute("aria-label", "DeepEpil labeling app");
    el.appendChild(root);

    const { ctx, dispose: disposeContext } = mainCreateContext(model);
    utilSetRegionOrder((model.get("vocabulary") || {}).regions);

    const shell = typeof shellCreate === "function" ? shellCreate(ctx, root) : null;
    if (shell) ctx.notify = (level, text, options) => shell.notify(level, text, options);
    const appActions = { ...ctx.actions }; // restored when the parts of a recording go away

    // The open recording: its parts live from open to close.
    let parts = {};
    let recordingKey = null;
    function destroyParts() {
      for (const part of Object.values(parts)) {
        try {
          if (part && typeof part.destroy === "function") part.destroy();
        } catch (err) {
          console.error("deepepil: a part failed to clean up", err);
        }
      }
      parts = {};
      for (const name of Object.keys(ctx.actions)) delete ctx.actions[name];
      Object.assign(ctx.actions, appActions);
    }
    function onRecording() {
      const recording = model.get("recording") || null;
      const key = recording ? JSON.stringify([recording.id, recording.n_frames, recording.fps]) : null;
      if (key === recordingKey) {
        ctx.state.recording = recording;
        return;
      }
      recordingKey = key;
      destroyParts();
      Object.assign(ctx.state, { frame: 0, playing: false, rate: 1.0, loop: null, selection: null, recording });
      mainResetLabels(ctx, recording ? model.get("labels") : null);
      if (recording) parts = mainCreateParts(ctx);
      if (shell) shell.mountParts(parts);
      ctx.bus.emit("recording", { recording });
      ctx.bus.emit("select", { selection: null });
    }
    function onLabels() {
      if (ctx.state.recording) mainResetLabels(ctx, model.get("labels"));
    }
    function onScreen() {
      if (shell) shell.showScreen(model.get("screen") || "landing");
    }
    function onStatus() {
      ctx.bus.emit("status", { status: model.get("status") || { state: "idle" } });
    }
    function onVocabulary() {
      utilSetRegionOrder((model.get("vocabulary") || {}).regions);
      ctx.bus.emit("vocabulary", { vocabulary: model.get("vocabulary") || {} });
    }
    const traitHandlers = {
      "change:recording": onRecording, "change:labels": onLabels, "change:screen": onScreen,
      "change:status": onStatus, "change:vocabulary": onVocabulary,
    };
    for (const [event, fn] of Object.entries(traitHandlers)) model.on(event, fn);

    // Keyboard: the root takes focus on click so its shortcuts work; handled keys stop here.
    const keys = mainKeyHandler(ctx, root, shell);
    root.addEventListener("keydown", keys.onKeyDown);
    const onPointerDown = (event) => {
      const target = event.target;
      if (target === root || !(target.closest && target.closest("input, textarea, select, button, a, [tabindex]"))) {
        // Focus after the browser's own focus handling (and JupyterLab's) for this click.
        setTimeout(() => {
          if (!root.contains(document.activeElement) || document.activeElement === document.body) {
            root.focus({ preventScroll: true });
          }
        }, 0);
        root.focus({ preventScroll: true });
      }
    };
    root.addEventListener("mousedown", onPointerDown);
    const onFocusIn = () => root.classList.add("de-app--focused");
    const onFocusOut = () => {
      setTimeout(() => root.classList.toggle("de-app--focused", root.contains(document.activeElement)), 0);
    };
    root.addEventListener("focusin", onFocusIn);
    root.addEventListener("focusout", onFocusOut);

    let resizeObserver = null;
    if (typeof ResizeObserver === "function") {
      resizeObserver = new ResizeObserver(() => ctx.bus.emit("resize", {}));
      resizeObserver.observe(root);
    }

    onScreen();
    onRecording();
    onStatus();

    return () => {
      if (resizeObserver) resizeObserver.disconnect();
      root.removeEventListener("keydown", keys.onKeyDown);
      root.removeEventListener("mousedown", onPointerDown);
      root.removeEventListener("focusin", onFocusIn);
      root.removeEventListener("focusout", onFocusOut);
      keys.dispose();
      for (const [event, fn] of Object.entries(traitHandlers)) model.off(event, fn);
      destroyParts();
      if (shell) shell.destroy();
      disposeContext();
      root.remove();
    };
  },
};
