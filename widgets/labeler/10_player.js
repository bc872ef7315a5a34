// 10_player.js: the synchronized stream views, the transport bar, the playback clock, the frame
// cache and the prefetch. createPlayer(ctx) -> {el, destroy()} (README "The context object").
//
// Frames come from the kernel in batches ({type: "frames", stream, indices, format} -> one JPEG
// buffer per index, deepepil/ui/frames.py); each stream keeps an LRU cache of the encoded images
// (PLAYER_CACHE_FRAMES) and a smaller one of decoded ImageBitmaps near the playhead. The clock runs
// in the browser (requestAnimationFrame, real time x rate); a frame that is not ready in time is
// skipped, never waited for, so time does not stretch at high rates.
//
// Actions (ctx.actions): play_pause, step_forward, step_back, second_forward, second_back,
// speed_up, speed_down, speed_reset, toggle_loop, go_start, go_end, next_stream_view.
// Bus: emits "frame" {frame, source: "player"} (through ctx.seek), "play", "rate", "loop"; follows
// "frame" from other parts as a seek, and "play", "rate", "loop" from anyone. The stream view
// ("all" or one stream) is remembered in localStorage["deepepil.player.view"].
//
// Performance counters, for bench/ and the browser tests: `window.__deepepil_player` (the latest
// player created) and `player.counters`, one object updated in place:
//   frame, playing, rate, view     the playhead and what is shown ("all" or a stream name)
//   displayed {stream: n}          new frames drawn on each stream's canvas
//   skipped {stream: n}            frames passed over during playback (not ready in time, or stride)
//   lastSeekMs [ms, ...]           seek-to-display latencies of the last 200 seeks made while paused:
//                                  from the seek to the moment every visible view shows that frame
//   seeks                          seeks measured so far (lastSeekMs keeps the latest 200)
//   requests, replies, requestErrors, framesReceived, bytesReceived, frameErrors
//   inflight                       requests in flight now
//   stride {stream: n}             every how many frames a stream is fetched while playing (1: all;
//                                  more when the kernel cannot encode them all in time)
//   cached {stream: n}, bitmaps {stream: n}   encoded / decoded frames held
//   shown {stream: index}          the frame each view shows (-1: none yet)
//   reset()                        zero the counters (not the caches)
// The root element also carries data-frame, data-playing, data-rate and data-view.

const PLAYER_RATES = [0.25, 0.5, 1, 1.5, 2, 4];
const PLAYER_VIEW_KEY = "deepepil.player.view";
const PLAYER_STREAMS = ["ir", "depth", "rgb"]; // the display order; other image streams follow
const PLAYER_TITLES = { ir: "IR", depth: "Depth", rgb: "RGB" };
const PLAYER_CACHE_FRAMES = 300; // encoded frames kept per stream
const PLAYER_CACHE_BYTES = 64 * 2 ** 20; // ... and at most this many bytes of them
const PLAYER_BITMAP_BYTES = 128 * 2 ** 20; // decoded pixels kept, shared by the visible streams
const PLAYER_MAX_INFLIGHT = { playing: 3, paused: 1 }; // prefetch requests in flight
const PLAYER_MAX_BATCH = 16; // frames per request
const PLAYER_BATCH_MS = 30; // a batch should keep the kernel busy about this long while playing
const PLAYER_PAUSED_BATCH_MS = 10; // ... and while paused (the next seek waits behind it)
const PLAYER_AHEAD_SECONDS = 1.5; // wall-clock seconds of playback prefetched
const PLAYER_PAUSED_AHEAD_SECONDS = 1; // prefetched around a paused playhead
const PLAYER_PAUSED_BEHIND_SECONDS = 0.5;
const PLAYER_SEEK_SAMPLES = 200;
const PLAYER_LOADING_BADGE_MS = 200;

const PLAYER_ICONS = {
  start: '<path d="M6 5h2v14H6zM20 5v14L9 12z"/>',
  end: '<path d="M16 5h2v14h-2zM4 5l11 7-11 7z"/>',
  play: '<path d="M7 4.5v15L19.5 12z"/>',
  pause: '<path d="M6 5h4v14H6zM14 5h4v14h-4z"/>',
  frameBack: '<path d="M7 6h2v12H7zM18 6v12l-8-6z"/>',
  frameForward: '<path d="M15 6h2v12h-2zM6 6l8 6-8 6z"/>',
  secondBack: '<path d="M12 6v12L3.5 12zM21 6v12l-8.5-6z"/>',
  secondForward: '<path d="M3 6l8.5 6L3 18zM12 6l8.5 6-8.5 6z"/>',
  loop: '<path d="M7 7h10v3l4-4-4-4v3H5v6h2zm10 10H7v-3l-4 4 4 4v-3h12v-6h-2z"/>',
};

function playerIcon(name) {
  const attrs = 'viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="currentColor"';
  return `<svg ${attrs}>${PLAYER_ICONS[name]}</svg>`;
}

function playerEmptyCounters() {
  return {
    frame: 0, playing: false, rate: 1, view: "all",
    displayed: {}, skipped: {}, lastSeekMs: [], seeks: 0,
    requests: 0, replies: 0, requestErrors: 0, framesReceived: 0, bytesReceived: 0, frameErrors: 0,
    inflight: 0, stride: {}, cached: {}, bitmaps: {}, shown: {},
  };
}

/** Per-stream frame store: encoded images (LRU), decoded bitmaps near the playhead, requests in flight. */
function playerStreamStore(info, onDecoded) {
  const nativeWidth = info.width || 512;
  const nativeHeight = info.height || 424;
  const store = {
    name: info.name,
    info,
    encoded: new Map(), // index -> {blob} | {error}; insertion order = least recently used first
    encodedBytes: 0,
    bitmaps: new Map(), // index -> ImageBitmap
    decoding: new Set(),
    inflight: new Set(),
    requests: 0, // prefetch requests in flight
    urgent: 0, // seek requests in flight
    costMs: 2 + (nativeWidth * nativeHeight) / 1e5, // kernel time per frame (EWMA; a guess until replies come)
    rttMs: 40, // request round trip (EWMA), how far ahead of the playhead a request must aim
    stride: 1, // fetch every stride-th frame while playing
    width: nativeWidth, // decode to this size: the view's size on screen, at most the frame's own
    height: nativeHeight,
    bitmapBytes() {
      return Math.max(1, this.width * this.height * 4);
    },
    failures: 0,
    retryAt: 0,
    fatal: null, // the kernel refused the stream itself (e.g. the store lacks it): why
    closed: false,
    has(i) {
      return this.encoded.has(i);
    },
    get(i) {
      const entry = this.encoded.get(i);
      if (entry) { // refresh its place in the LRU order
        this.encoded.delete(i);
        this.encoded.set(i, entry);
      }
      return entry;
    },
    put(i, entry) {
      const old = this.encoded.get(i);
      if (old && old.blob) this.encodedBytes -= old.blob.size;
      this.encoded.delete(i);
      this.encoded.set(i, entry);
      if (entry.blob) this.encodedBytes += entry.blob.size;
      while (this.encoded.size > PLAYER_CACHE_FRAMES || this.encodedBytes > PLAYER_CACHE_BYTES) {
        const [oldest, dropped] = this.encoded.entries().next().value;
        this.encoded.delete(oldest);
        if (dropped.blob) this.encodedBytes -= dropped.blob.size;
      }
    },
    decode(i, budgetBytes, playhead) {
      if (this.bitmaps.has(i) || this.decoding.has(i)) return;
      const entry = this.encoded.get(i);
      if (!entry || !entry.blob) return;
      this.decoding.add(i);
      // Chromium scales while it decodes, off the main thread; drawing a 1080p frame into a small view would not be.
      const options = this.width < nativeWidth
        ? { resizeWidth: this.width, resizeHeight: this.height, resizeQuality: "medium" }
        : undefined;
      createImageBitmap(entry.blob, options).then((bitmap) => {
        this.decoding.delete(i);
        if (this.closed) {
          bitmap.close();
          return;
        }
        this.bitmaps.set(i, bitmap);
        this.trimBitmaps(budgetBytes, playhead());
        onDecoded(this, i);
      }, (err) => {
        this.decoding.delete(i);
        if (this.closed) return;
        this.put(i, { error: `the browser could not decode the image (${err && err.message ? err.message : err})` });
        onDecoded(this, i);
      });
    },
    /** Keep the decoded frames nearest the playhead (those behind it count four times as far). */
    trimBitmaps(budgetBytes, playhead) {
      const keep = this.maxBitmaps(budgetBytes);
      while (this.bitmaps.size > keep) {
        let worst = null;
        let worstDistance = -1;
        for (const i of this.bitmaps.keys()) {
          const distance = i >= playhead ? i - playhead : (playhead - i) * 4;
          if (distance > worstDistance) {
            worst = i;
            worstDistance = distance;
          }
        }
        this.bitmaps.get(worst).close();
        this.bitmaps.delete(worst);
      }
    },
    maxBitmaps(budgetBytes) {
      return Math.max(4, Math.floor(budgetBytes / this.bitmapBytes()));
    },
    close() {
      this.closed = true;
      for (const bitmap of this.bitmaps.values()) bitmap.close();
      this.bitmaps.clear();
      this.encoded.clear();
      this.encodedBytes = 0;
    },
  };
  return store;
}

/** The image streams of a recording, in display order: [{name, width, height}]. */
function playerImageStreams(recording) {
  const listed = (recording && Array.isArray(recording.streams) ? recording.streams : [])
    .map((s) => (typeof s === "string" ? { name: s } : s))
    .filter((s) => s && s.name && (PLAYER_STREAMS.includes(s.name) || (s.width > 0 && s.height > 0)));
  const rank = (name) => (PLAYER_STREAMS.includes(name) ? PLAYER_STREAMS.indexOf(name) : PLAYER_STREAMS.length);
  return listed.sort((a, b) => rank(a.name) - rank(b.name));
}

function playerButton(className, icon, label) {
  const button = utilEl("button", `de-player-button ${className}`);
  button.type = "button";
  if (icon) button.innerHTML = playerIcon(icon);
  button.setAttribute("aria-label", label);
  // Keep the keyboard focus where it was (the app), so Space still means play/pause after a click.
  button.addEventListener("mousedown", (event) => event.preventDefault());
  return button;
}

function createPlayer(ctx) {
  const { state, bus } = ctx;
  const recording = state.recording || {};
  const fps = recording.fps > 0 ? recording.fps : 30;
  const nFrames = Math.max(1, Math.floor(recording.n_frames || 1));
  const available = playerImageStreams(recording);
  const presentNames = available.map((s) => s.name);
  const viewNames = [...PLAYER_STREAMS, ...presentNames.filter((n) => !PLAYER_STREAMS.includes(n))];

  const counters = playerEmptyCounters();
  counters.reset = () => {
    const fresh = playerEmptyCounters();
    for (const key of ["displayed", "skipped", "lastSeekMs", "seeks", "requests", "replies", "requestErrors",
      "framesReceived", "bytesReceived", "frameErrors"]) counters[key] = fresh[key];
    for (const name of presentNames) {
      counters.displayed[name] = 0;
      counters.skipped[name] = 0;
    }
  };
  counters.reset();

  let destroyed = false;
  let rafId = 0;
  let anchorTime = 0; // performance.now() when the clock was last anchored
  let anchorPos = 0; // the (fractional) frame at anchorTime
  let strideCheckedAt = 0;
  let inflight = 0;
  let lastArrival = 0;
  let pendingSeek = null; // {frame, t0, waiting: Set of stream names}
  let playing = false; // ours: another part may write ctx.state before it emits
  let rate = PLAYER_RATES.includes(state.rate) ? state.rate : 1;
  let loopKey = "null";
  let echo = false; // true while we emit, so our own listeners ignore it
  let scrubbing = false;
  let resumeAfterScrub = false;
  let view = "all";
  try {
    view = window.localStorage.getItem(PLAYER_VIEW_KEY) || "all";
  } catch (err) { /* storage may be disabled */ }
  if (view !== "all" && !presentNames.includes(view)) view = "all";

  // -- DOM ------------------------------------------------------------------------------------
  const el = utilEl("div", "de-player");
  el.setAttribute("role", "region");
  el.setAttribute("aria-label", "Video player");
  const viewsEl = utilEl("div", "de-player-views");
  el.appendChild(viewsEl);

  const stores = new Map(); // name -> stream store
  const views = new Map(); // name -> {name, figure, canvas, g, message, badge, store, shown, minIndex, ...}
  // The playhead's own frame is drawn as soon as it is decoded (a seek then shows it without waiting
  // for the next animation frame); others wait for the next tick.
  const onDecoded = (s, i) => {
    if (!destroyed && i === state.frame) {
      const now = performance.now();
      for (const v of visibleViews()) if (v.store === s) present(v, state.frame, now);
    }
    requestDraw();
  };
  for (const info of available) stores.set(info.name, playerStreamStore(info, onDecoded));
  const ref = available[0] || { width: 512, height: 424 };
  for (const name of viewNames) {
    const info = available.find((s) => s.name === name);
    const width = info && info.width > 0 ? info.width : ref.width || 512;
    const height = info && info.height > 0 ? info.height : ref.height || 424;
    const figure = utilEl("figure", "de-player-view");
    figure.dataset.stream = name;
    const canvas = utilEl("canvas", "de-player-canvas");
    canvas.width = width;
    canvas.height = height;
    const caption = utilEl("figcaption", "de-player-caption", PLAYER_TITLES[name] || name);
    const message = utilEl("div", "de-player-message");
    message.hidden = true;
    const badge = utilEl("div", "de-player-badge", "loading…");
    badge.hidden = true;
    figure.append(canvas, caption, message, badge);
    figure.title = "Double-click to show this stream alone (again for all)";
    figure.addEventListener("dblclick", () => setView(view === name ? "all" : name));
    viewsEl.appendChild(figure);
    const v = {
      name, figure, canvas, g: canvas.getContext("2d"), message, badge, ratio: width / height,
      store: stores.get(name) || null, shown: -1, shownError: false, minIndex: 0, waitingSince: 0,
    };
    if (!v.store) {
      figure.classList.add("de-player-view--missing");
      showMessage(v, `${PLAYER_TITLES[name] || name}: this recording has no ${name} stream`);
    }
    views.set(name, v);
  }

  const scrub = utilEl("input", "de-player-scrub");
  scrub.type = "range";
  scrub.min = "0";
  scrub.max = String(nFrames - 1);
  scrub.step = "1";
  scrub.value = String(state.frame || 0);
  scrub.setAttribute("aria-label", "Playhead");
  el.appendChild(scrub);

  const bar = utilEl("div", "de-player-transport");
  const buttons = {
    go_start: playerButton("de-player-start", "start", "Go to start"),
    second_back: playerButton("de-player-second-back", "secondBack", "Back one second"),
    step_back: playerButton("de-player-step-back", "frameBack", "Back one frame"),
    play_pause: playerButton("de-player-play", "play", "Play"),
    step_forward: playerButton("de-player-step-forward", "frameForward", "Forward one frame"),
    second_forward: playerButton("de-player-second-forward", "secondForward", "Forward one second"),
    go_end: playerButton("de-player-end", "end", "Go to end"),
  };
  const group = utilEl("div", "de-player-group");
  group.append(...Object.values(buttons));
  const time = utilEl("div", "de-player-time");
  const timeText = utilEl("span", "de-player-clock");
  // "frame 44 of 0–179": the frame's number among those of the recording (numbered from 0)
  const frameInfo = utilEl("span", "de-player-frameinfo", "frame ");
  const frameText = utilEl("span", "de-player-frame");
  frameInfo.append(frameText, ` of 0–${nFrames - 1}`);
  frameInfo.title = `Frame number; the recording has ${nFrames} frames, numbered from 0`;
  time.append(timeText, frameInfo);
  const rateSelect = utilEl("select", "de-player-rate");
  rateSelect.setAttribute("aria-label", "Playback speed");
  for (const value of PLAYER_RATES) {
    const option = utilEl("option", null, `${value}×`);
    option.value = String(value);
    rateSelect.appendChild(option);
  }
  const loopButton = playerButton("de-player-loop", "loop", "Loop the selection");
  const loopText = utilEl("span", "de-player-loop-range");
  loopButton.appendChild(loopText);
  buttons.toggle_loop = loopButton;
  const viewGroup = utilEl("div", "de-player-streams");
  viewGroup.setAttribute("role", "group");
  viewGroup.setAttribute("aria-label", "Streams shown");
  const viewButtons = new Map();
  for (const name of ["all", ...presentNames]) {
    const label = name === "all" ? "All streams" : `${PLAYER_TITLES[name] || name} only`;
    const button = playerButton("de-player-stream", null, label);
    button.textContent = name === "all" ? "All" : PLAYER_TITLES[name] || name;
    button.dataset.view = name;
    button.addEventListener("click", () => setView(name));
    viewButtons.set(name, button);
    viewGroup.appendChild(button);
  }
  const spacer = utilEl("div", "de-player-spacer");
  bar.append(group, time, spacer, rateSelect, loopButton, viewGroup);
  el.appendChild(bar);

  // -- state changes ----------------------------------------------------------------------------
  const clampFrame = (frame) => utilClamp(Math.round(Number(frame)), 0, nFrames - 1);

  function seek(frame, { measure = true } = {}) {
    const target = clampFrame(frame);
    // ctx.seek sets state.frame and emits "frame"; our own listener ignores source "player".
    ctx.seek(target, "player");
    onSeek(target, measure);
  }

  /** The playhead moved by a seek (ours or another part's): re-anchor the clock, show that frame. */
  function onSeek(target, measure) {
    anchorPos = target;
    anchorTime = performance.now();
    for (const v of views.values()) v.minIndex = target;
    if (measure && !playing) {
      const waiting = new Set([...visibleViews()].filter((v) => v.store).map((v) => v.name));
      pendingSeek = waiting.size ? { frame: target, t0: performance.now(), waiting } : null;
    } else {
      pendingSeek = null;
    }
    updateTime();
    requestDraw(true);
  }

  function emit(name, payload) {
    echo = true;
    try {
      bus.emit(name, payload);
    } finally {
      echo = false;
    }
  }

  function setPlaying(value, { announce = true } = {}) {
    value = Boolean(value);
    if (value === playing) {
      state.playing = value;
      return;
    }
    if (value) {
      const loop = state.loop;
      if (loop && (state.frame < loop[0] || state.frame >= loop[1] - 1)) seek(loop[0], { measure: false });
      else if (!loop && state.frame >= nFrames - 1) seek(0, { measure: false });
    }
    playing = value;
    state.playing = value;
    strideCheckedAt = 0;
    anchorPos = state.frame;
    anchorTime = performance.now();
    pendingSeek = null;
    for (const v of views.values()) v.minIndex = state.frame;
    if (announce) emit("play", { playing: value });
    if (!value) seek(state.frame, { measure: false }); // settle: the picture shows exactly the playhead
    updateControls();
    requestDraw(true);
  }

  function setRate(value, { announce = true } = {}) {
    value = Number(value);
    if (!PLAYER_RATES.includes(value)) value = 1;
    if (value !== rate) {
      anchorPos = currentPos(performance.now());
      anchorTime = performance.now();
      rate = value;
      state.rate = value;
      strideCheckedAt = 0;
      if (announce) emit("rate", { rate: value });
    }
    state.rate = value;
    updateControls();
  }

  function stepRate(direction) {
    const index = PLAYER_RATES.indexOf(rate);
    const next = index < 0 ? PLAYER_RATES.indexOf(1) : utilClamp(index + direction, 0, PLAYER_RATES.length - 1);
    setRate(PLAYER_RATES[next]);
  }

  function setLoop(loop, { announce = true } = {}) {
    const valid = Array.isArray(loop) && loop.length === 2 && Number(loop[1]) > Number(loop[0]);
    state.loop = valid ? [clampFrame(loop[0]), utilClamp(Math.round(loop[1]), 1, nFrames)] : null;
    loopKey = JSON.stringify(state.loop);
    if (announce) emit("loop", { loop: state.loop });
    const range = state.loop;
    if (range && (state.frame < range[0] || state.frame >= range[1])) seek(range[0]);
    updateControls();
  }

  /** The interval of the timeline's selection: [start, end) in frames, or null. */
  function selectionRange() {
    const sel = state.selection;
    if (!sel || !ctx.labels) return null;
    const table = { moi: "mois", suggestion: "suggestions", seizure: "seizures" }[sel.kind];
    const row = table && ctx.labels[table] ? ctx.labels[table].get(sel.id) : null;
    if (!row) return null;
    if (sel.kind === "seizure") {
      const end = row.offset_frame !== null && row.offset_frame !== undefined ? row.offset_frame : row.onset_frame + 1;
      return [row.onset_frame, Math.max(end, row.onset_frame + 1)];
    }
    return [row.start_frame, row.end_frame];
  }

  function toggleLoop() {
    if (state.loop) {
      setLoop(null);
      return;
    }
    const range = selectionRange();
    if (!range) {
      ctx.notify("info", "To loop, select an MOI, a suggestion or a seizure on the timeline first.");
      return;
    }
    setLoop(range);
  }

  function setView(name) {
    if (name !== "all" && !presentNames.includes(name)) name = "all";
    view = name;
    try {
      window.localStorage.setItem(PLAYER_VIEW_KEY, name);
    } catch (err) { /* storage may be disabled */ }
    for (const v of views.values()) v.figure.hidden = !(name === "all" || name === v.name);
    for (const [key, button] of viewButtons) {
      button.classList.toggle("de-player-stream--active", key === name);
      button.setAttribute("aria-pressed", String(key === name));
    }
    pendingSeek = null;
    counters.view = name;
    el.dataset.view = name;
    layout();
    requestDraw(true);
  }

  function nextView() {
    const order = ["all", ...presentNames];
    setView(order[(order.indexOf(view) + 1) % order.length]);
  }

  function* visibleViews() {
    for (const v of views.values()) if (view === "all" || view === v.name) yield v;
  }

  function visibleStores() {
    return [...visibleViews()].map((v) => v.store).filter(Boolean);
  }

  // -- layout: the views in one row or two, as large as the space allows ------------------------
  /**
   * Place the visible views (absolutely, inside viewsEl): equal heights, in the row count that
   * shows them largest. The height is what the container gives the player (the app's layout), or,
   * where nothing does (the player alone in a notebook), at most the stylesheet's max-height.
   */
  function layout() {
    const shown = [...visibleViews()];
    if (!shown.length) return;
    viewsEl.style.height = "";
    const style = window.getComputedStyle(viewsEl);
    const gap = parseFloat(style.columnGap) || 0;
    const width = viewsEl.clientWidth;
    if (!(width > 0)) return;
    const maxHeight = parseFloat(style.maxHeight) || window.innerHeight * 0.6;
    const given = viewsEl.clientHeight;
    const selfSized = given < 60;
    const height = selfSized ? maxHeight : Math.min(given, maxHeight);
    let best = null;
    for (let rows = 1; rows <= Math.min(2, shown.length); rows++) {
      const perRow = Math.ceil(shown.length / rows);
      const groups = [];
      for (let k = 0; k < shown.length; k += perRow) groups.push(shown.slice(k, k + perRow));
      let h = (height - gap * (groups.length - 1)) / groups.length;
      for (const g of groups) h = Math.min(h, (width - gap * (g.length - 1)) / g.reduce((sum, v) => sum + v.ratio, 0));
      // More rows only when they make the views clearly larger: one row leaves the timeline more room.
      if (!best || h > best.h * 1.25) best = { h, groups };
    }
    const h = Math.max(30, Math.floor(best.h));
    const total = best.groups.length * h + gap * (best.groups.length - 1);
    if (selfSized) viewsEl.style.height = `${total}px`;
    let top = selfSized ? 0 : Math.max(0, Math.floor((Math.min(given, height) - total) / 2));
    const dpr = window.devicePixelRatio || 1;
    for (const g of best.groups) {
      const rowWidth = g.reduce((sum, v) => sum + Math.floor(h * v.ratio), 0) + gap * (g.length - 1);
      let left = Math.max(0, Math.floor((width - rowWidth) / 2));
      for (const v of g) {
        const w = Math.floor(h * v.ratio);
        Object.assign(v.figure.style, { left: `${left}px`, top: `${top}px`, width: `${w}px`, height: `${h}px` });
        left += w + gap;
        sizeCanvas(v, w * dpr);
      }
      top += h + gap;
    }
  }

  /** The canvas holds what the screen shows (never more than the frame has): cheaper to decode and draw. */
  function sizeCanvas(v, screenWidth) {
    if (!v.store) return;
    const nativeWidth = v.store.info.width || v.canvas.width;
    const nativeHeight = v.store.info.height || v.canvas.height;
    const scale = Math.min(1, screenWidth / nativeWidth);
    const w = Math.max(16, Math.round(nativeWidth * scale));
    const h = Math.max(16, Math.round(nativeHeight * scale));
    if (Math.abs(w - v.canvas.width) <= 8 && !(scale === 1 && w !== v.canvas.width)) return;
    v.canvas.width = w;
    v.canvas.height = h;
    v.store.width = w;
    v.store.height = h;
    v.shown = -1; // resizing cleared it: draw again
    v.minIndex = Math.min(v.minIndex, state.frame);
    requestDraw();
  }

  // -- display ------------------------------------------------------------------------------------
  function showMessage(v, text) {
    v.message.textContent = text;
    v.message.hidden = !text;
    v.figure.classList.toggle("de-player-view--error", Boolean(text));
  }

  function drawFrame(v, index, bitmap) {
    const previous = v.shown;
    v.g.drawImage(bitmap, 0, 0, v.canvas.width, v.canvas.height);
    if (v.shownError) showMessage(v, "");
    v.shown = index;
    v.shownError = false;
    counters.shown[v.name] = index;
    if (index !== previous) {
      counters.displayed[v.name] = (counters.displayed[v.name] || 0) + 1;
      if (playing && previous >= 0 && index > previous + 1 && index - previous < 10 * fps) {
        counters.skipped[v.name] = (counters.skipped[v.name] || 0) + index - previous - 1;
      }
    }
    seekShown(v, index);
  }

  function drawError(v, index, error) {
    if (v.shown === index && v.shownError) return;
    v.g.fillStyle = "#1b1b1b";
    v.g.fillRect(0, 0, v.canvas.width, v.canvas.height);
    showMessage(v, `${v.name}: frame ${index} could not be read: ${error}`);
    v.shown = index;
    v.shownError = true;
    counters.shown[v.name] = index;
    seekShown(v, index);
  }

  function seekShown(v, index) {
    if (!pendingSeek || pendingSeek.frame !== index || !pendingSeek.waiting.has(v.name)) return;
    pendingSeek.waiting.delete(v.name);
    if (pendingSeek.waiting.size === 0) {
      counters.lastSeekMs.push(performance.now() - pendingSeek.t0);
      if (counters.lastSeekMs.length > PLAYER_SEEK_SAMPLES) counters.lastSeekMs.shift();
      counters.seeks += 1;
      pendingSeek = null;
    }
  }

  /** Show frame `f` on view `v`, or (playing) the newest ready frame not after it. */
  function present(v, f, now) {
    const s = v.store;
    if (!s) return;
    if (s.fatal) {
      if (!v.shownError) {
        v.g.fillStyle = "#1b1b1b";
        v.g.fillRect(0, 0, v.canvas.width, v.canvas.height);
        showMessage(v, `${v.name}: cannot be shown: ${s.fatal}`);
        v.shownError = true;
      }
      seekShown(v, pendingSeek ? pendingSeek.frame : f);
      v.badge.hidden = true;
      return;
    }
    if (playing) {
      // v.minIndex: the oldest frame worth drawing (the last one drawn + 1, or a seek's target)
      const lowest = Math.max(v.minIndex, f - 8 * s.stride - 2);
      for (let i = f; i >= lowest; i--) {
        const bitmap = s.bitmaps.get(i);
        if (bitmap) {
          drawFrame(v, i, bitmap);
          v.minIndex = i + 1;
          break;
        }
        const entry = i === f ? s.encoded.get(i) : null;
        if (entry && entry.error) {
          drawError(v, i, entry.error);
          break;
        }
      }
      v.badge.hidden = true;
      return;
    }
    if (v.shown !== f || v.shownError) {
      const bitmap = s.bitmaps.get(f);
      const entry = s.encoded.get(f);
      if (bitmap) drawFrame(v, f, bitmap);
      else if (entry && entry.error) drawError(v, f, entry.error);
    }
    const waiting = v.shown !== f;
    if (waiting && !v.waitingSince) {
      v.waitingSince = now;
      setTimeout(() => requestDraw(), PLAYER_LOADING_BADGE_MS + 10); // then show the badge if still waiting
    }
    if (!waiting) v.waitingSince = 0;
    v.badge.hidden = !(waiting && now - v.waitingSince >= PLAYER_LOADING_BADGE_MS);
  }

  function currentPos(now) {
    if (!playing) return state.frame;
    return anchorPos + (Math.max(0, now - anchorTime) / 1000) * fps * rate;
  }

  /** Advance the playhead by the clock (wrapping a loop, stopping at the end). */
  function advance(now) {
    let f = Math.floor(currentPos(now) + 1e-6);
    const loop = state.loop;
    if (loop && f >= loop[1]) {
      f = loop[0] + ((f - loop[1]) % Math.max(1, loop[1] - loop[0]));
      anchorPos = f;
      anchorTime = now;
      for (const v of views.values()) v.minIndex = f;
    }
    if (!loop && f >= nFrames - 1) {
      f = nFrames - 1;
      if (f !== state.frame) moveTo(f);
      setPlaying(false);
      return;
    }
    if (f !== state.frame) moveTo(f);
  }

  function moveTo(f) {
    ctx.seek(f, "player");
    updateTime();
  }

  /** Draw now (`immediate`, e.g. a seek to a decoded frame) or at the next animation frame. */
  function requestDraw(immediate) {
    if (destroyed) return;
    if (immediate) tick(true);
    else if (!rafId) rafId = requestAnimationFrame(() => tick(false));
  }

  function tick(sync) {
    if (!sync) rafId = 0;
    if (destroyed) return;
    const now = performance.now(); // not rAF's timestamp: it can precede the clock's anchor
    if (playing) advance(now);
    const f = state.frame;
    updateStride(now);
    for (const v of visibleViews()) present(v, f, now);
    plan(now);
    decodeAhead(f);
    publish();
    if (playing && !rafId) rafId = requestAnimationFrame(() => tick(false));
  }

  // -- fetching --------------------------------------------------------------------------------
  function bitmapBudget() {
    return PLAYER_BITMAP_BYTES / Math.max(1, visibleStores().length);
  }

  /**
   * While playing, fetch every stride-th frame of the streams the kernel cannot keep up with: the
   * most expensive stream first, until the kernel would be busy at most 75% of the time.
   */
  function updateStride(now) {
    if (now - strideCheckedAt < 500 && playing) return;
    strideCheckedAt = now;
    const stores = visibleStores();
    for (const s of stores) s.stride = 1;
    if (playing) {
      const cost = (s) => (fps * rate * s.costMs) / 1000 / s.stride; // fraction of the kernel's time
      for (let guard = 0; guard < 32; guard++) {
        const load = stores.reduce((sum, s) => sum + cost(s), 0);
        const worst = stores.filter((s) => s.stride < 8).sort((a, b) => cost(b) - cost(a))[0];
        if (load <= 0.75 || !worst) break;
        worst.stride += 1;
      }
    }
    for (const s of stores) counters.stride[s.name] = s.stride;
  }

  /** Map a position past the loop's end (or the recording's) back into range; -1 when outside. */
  function wrap(position) {
    const loop = state.loop;
    if (loop && position >= loop[1]) position = loop[0] + ((position - loop[1]) % Math.max(1, loop[1] - loop[0]));
    return position >= 0 && position < nFrames ? position : -1;
  }

  /** The frames to have, most wanted first. */
  function wanted(f, stride) {
    const out = [];
    const seen = new Set();
    const add = (i) => {
      if (i >= 0 && !seen.has(i)) {
        seen.add(i);
        out.push(i);
      }
    };
    if (playing) {
      const rttMs = Math.max(40, ...visibleStores().map((s) => s.rttMs));
      const lead = Math.ceil((rttMs / 1000) * fps * rate) + 1;
      const count = Math.min(
        Math.ceil((PLAYER_AHEAD_SECONDS * fps * rate) / stride),
        Math.floor(PLAYER_CACHE_FRAMES * 0.6),
      );
      const first = Math.ceil((f + lead) / stride) * stride;
      for (let k = 0; k < count; k++) add(wrap(first + k * stride));
    } else {
      const ahead = Math.ceil(PLAYER_PAUSED_AHEAD_SECONDS * fps);
      const behind = Math.ceil(PLAYER_PAUSED_BEHIND_SECONDS * fps);
      add(f);
      for (let k = 1; k <= ahead; k++) {
        add(wrap(f + k));
        if (k <= behind) add(f - k);
      }
    }
    return out;
  }

  function batchSize(s) {
    const budgetMs = playing ? PLAYER_BATCH_MS : PLAYER_PAUSED_BATCH_MS;
    return utilClamp(Math.floor(budgetMs / Math.max(0.5, s.costMs)), 1, PLAYER_MAX_BATCH);
  }

  /** Send the requests that are due: paused, the playhead's frame first (a seek), then prefetch. */
  function plan(now) {
    if (destroyed) return;
    const f = state.frame;
    const stores = visibleStores().filter((s) => !s.fatal);
    if (!playing) {
      // While a seek's frames are on their way nothing else is sent: it would queue ahead of the next seek.
      let urgentPending = false;
      for (const s of stores) {
        if (s.has(f)) continue;
        urgentPending = true;
        if (!s.inflight.has(f) && s.urgent === 0 && now >= s.retryAt) send(s, [f], true);
      }
      if (urgentPending) return;
    }
    const limit = playing ? PLAYER_MAX_INFLIGHT.playing : PLAYER_MAX_INFLIGHT.paused;
    if (inflight >= limit) return; // the usual case while playing: build no lists every frame
    const lists = new Map(stores.map((s) => [s, wanted(f, s.stride)]));
    // Playing, the window slides a frame at a time: send full batches (one message per frame would
    // cost the kernel more than the frames), unless the first missing frame is due within half a second.
    const dueFrames = Math.ceil(fps * rate * 0.5);
    for (let guard = 0; guard < 8 && inflight < limit; guard++) {
      let best = null;
      for (const s of stores) {
        if (now < s.retryAt || s.requests >= 2) continue;
        const list = lists.get(s);
        const size = batchSize(s);
        const indices = [];
        let rank = -1;
        for (let r = 0; r < list.length && indices.length < size; r++) {
          const i = list[r];
          if (s.has(i) || s.inflight.has(i)) continue;
          if (rank < 0) rank = r * s.stride; // how far ahead, in frames
          indices.push(i);
        }
        if (playing && indices.length < size && rank + (list.length ? list[0] - f : 0) > dueFrames) continue;
        if (indices.length && (!best || rank < best.rank || (rank === best.rank && s.requests < best.s.requests))) {
          best = { s, indices, rank };
        }
      }
      if (!best) break;
      send(best.s, best.indices, false);
    }
  }

  function send(s, indices, urgent) {
    for (const i of indices) s.inflight.add(i);
    if (urgent) s.urgent += 1;
    else s.requests += 1;
    inflight += 1;
    counters.requests += 1;
    const sentAt = performance.now();
    const queued = inflight > 1;
    const content = { type: "frames", stream: s.name, indices, format: "jpeg" };
    Promise.resolve()
      .then(() => ctx.request(content))
      .then((reply) => {
        if (destroyed || s.closed) return;
        receive(s, indices, reply, sentAt, queued);
        s.failures = 0;
        s.retryAt = 0;
      }, (err) => {
        if (destroyed || s.closed) return;
        counters.requestErrors += 1;
        s.failures += 1;
        s.retryAt = performance.now() + Math.min(10000, 500 * 2 ** (s.failures - 1));
        const message = err && err.message ? err.message : String(err);
        for (const v of views.values()) {
          if (v.store === s && indices.includes(state.frame) && !s.has(state.frame)) {
            showMessage(v, `${s.name}: frame ${state.frame} could not be loaded: ${message}`);
            v.shownError = true;
          }
        }
        setTimeout(() => requestDraw(), s.retryAt - performance.now() + 5);
      })
      .finally(() => {
        for (const i of indices) s.inflight.delete(i);
        if (urgent) s.urgent -= 1;
        else s.requests -= 1;
        inflight -= 1;
        if (!destroyed) requestDraw();
      });
  }

  function receive(s, indices, reply, sentAt, queued) {
    const content = (reply && reply.content) || {};
    const buffers = (reply && reply.buffers) || [];
    const errors = content.errors || {};
    const mime = content.mime || "image/jpeg";
    const answered = Array.isArray(content.indices) ? content.indices : indices;
    if (content.error) s.fatal = String(content.error); // the whole request was refused: stop asking
    let b = 0;
    for (const i of answered) {
      const error = errors[i] !== undefined ? errors[i] : errors[String(i)];
      if (error !== undefined && error !== null) {
        s.put(i, { error: String(error) });
        counters.frameErrors += 1;
        continue;
      }
      const buffer = buffers[b++];
      if (!buffer) {
        s.put(i, { error: "the kernel sent no image for it" });
        continue;
      }
      const blob = new Blob([buffer], { type: mime });
      counters.framesReceived += 1;
      counters.bytesReceived += blob.size;
      s.put(i, { blob });
    }
    const now = performance.now();
    counters.replies += 1;
    const n = Math.max(1, indices.length);
    // The kernel says how long it worked on the batch; an older kernel does not: then estimate it
    // (a FIFO kernel started the batch when it arrived or when the previous reply left).
    const serviceMs = Number.isFinite(content.encode_ms)
      ? content.encode_ms
      : now - (queued ? Math.max(sentAt, lastArrival) : sentAt);
    lastArrival = now;
    s.costMs = 0.7 * s.costMs + 0.3 * Math.max(0.2, serviceMs / n);
    s.rttMs = 0.7 * s.rttMs + 0.3 * (now - sentAt);
    // The playhead's frame: decode it at once.
    if (s.has(state.frame)) s.decode(state.frame, bitmapBudget(), () => state.frame);
  }

  /** Decode the frames about to be shown (and, paused, those a step away). */
  function decodeAhead(f) {
    const budget = bitmapBudget();
    const playhead = () => state.frame;
    for (const s of visibleStores()) {
      const maxAhead = Math.max(2, s.maxBitmaps(budget) - 4);
      const list = [];
      if (playing) {
        const count = Math.min(maxAhead, Math.max(3, Math.ceil((fps * rate * 0.3) / s.stride)));
        list.push(f);
        const first = Math.ceil((f + 1) / s.stride) * s.stride;
        for (let k = 0; k < count; k++) list.push(wrap(first + k * s.stride));
      } else {
        list.push(f);
        const ahead = Math.min(Math.ceil(fps * 0.4), maxAhead / 2); // ready to play, and to step either way
        for (let k = 1; k <= ahead; k++) list.push(f + k);
        for (let k = 1; k <= Math.min(6, ahead); k++) list.push(f - k);
      }
      for (const i of list) {
        if (i < 0 || i >= nFrames) continue;
        if (s.decoding.size >= 4) break;
        s.decode(i, budget, playhead);
      }
    }
  }

  // -- controls ----------------------------------------------------------------------------------
  function updateTime() {
    const f = state.frame;
    timeText.textContent = utilFormatTime(f, fps);
    frameText.textContent = String(f);
    if (document.activeElement !== scrub || !scrubbing) scrub.value = String(f);
    el.dataset.frame = String(f);
    counters.frame = f;
  }

  function updateControls() {
    buttons.play_pause.innerHTML = playerIcon(playing ? "pause" : "play");
    buttons.play_pause.classList.toggle("de-player-play--playing", playing);
    setTitle(buttons.play_pause, playing ? "Pause" : "Play", "play_pause");
    rateSelect.value = String(rate);
    rateSelect.classList.toggle("de-player-rate--changed", rate !== 1);
    const loop = state.loop;
    loopButton.classList.toggle("de-player-loop--active", Boolean(loop));
    loopButton.setAttribute("aria-pressed", String(Boolean(loop)));
    loopText.textContent = loop ? `${utilFormatTime(loop[0], fps)}–${utilFormatTime(loop[1], fps)}` : "";
    setTitle(loopButton, loop ? "Stop looping" : "Loop the selected MOI, suggestion or seizure", "toggle_loop");
    el.dataset.playing = String(playing);
    el.dataset.rate = String(rate);
    counters.playing = playing;
    counters.rate = rate;
  }

  const titles = {
    go_start: "Go to start", second_back: "Back one second", step_back: "Back one frame",
    step_forward: "Forward one frame", second_forward: "Forward one second", go_end: "Go to end",
  };
  function setTitle(button, text, action) {
    const shortcuts = (ctx.model && ctx.model.get && ctx.model.get("shortcuts")) || {};
    const key = shortcuts[action];
    const keys = Array.isArray(key) ? key.join(" or ") : key;
    button.title = keys ? `${text} (${keys})` : text;
    button.setAttribute("aria-label", text);
  }
  function updateTitles() {
    for (const [action, text] of Object.entries(titles)) setTitle(buttons[action], text, action);
    setTitle(rateSelect, "Playback speed", "speed_up");
    updateControls();
  }

  function publish() {
    counters.inflight = inflight;
    for (const [name, s] of stores) {
      counters.cached[name] = s.encoded.size;
      counters.bitmaps[name] = s.bitmaps.size;
    }
  }

  // -- actions and events ----------------------------------------------------------------------
  const step = (delta) => () => {
    if (playing) setPlaying(false);
    seek(state.frame + delta);
  };
  const actions = {
    play_pause: () => setPlaying(!playing),
    step_forward: step(1),
    step_back: step(-1),
    second_forward: step(Math.round(fps)),
    second_back: step(-Math.round(fps)),
    speed_up: () => stepRate(1),
    speed_down: () => stepRate(-1),
    speed_reset: () => setRate(1),
    toggle_loop: toggleLoop,
    go_start: () => seek(0),
    go_end: () => {
      if (playing) setPlaying(false);
      seek(nFrames - 1);
    },
    next_stream_view: nextView,
  };
  Object.assign(ctx.actions, actions);
  for (const [action, button] of Object.entries(buttons)) {
    if (action !== "toggle_loop") button.addEventListener("click", () => actions[action]());
  }
  loopButton.addEventListener("click", () => actions.toggle_loop());
  rateSelect.addEventListener("change", () => {
    setRate(rateSelect.value);
    // Hand the keyboard back to the app (a focused <select> keeps Space and the arrows for itself).
    const app = el.closest(".de-app") || el.closest("[tabindex]");
    if (app) app.focus({ preventScroll: true });
    else rateSelect.blur();
  });

  scrub.addEventListener("pointerdown", () => {
    scrubbing = true;
    resumeAfterScrub = playing;
    if (playing) setPlaying(false);
  });
  scrub.addEventListener("input", () => seek(Number(scrub.value)));
  const endScrub = () => {
    if (!scrubbing) return;
    scrubbing = false;
    if (resumeAfterScrub) setPlaying(true);
    resumeAfterScrub = false;
  };
  scrub.addEventListener("change", endScrub);
  scrub.addEventListener("pointerup", endScrub);

  const unsubscribe = [
    bus.on("frame", (event) => {
      if (!event || event.source === "player") return;
      onSeek(clampFrame(event.frame), true);
    }),
    // Another part (a menu, the timeline) may ask for these too: adopt without echoing.
    bus.on("play", (event) => {
      if (!echo && event) setPlaying(event.playing, { announce: false });
    }),
    bus.on("rate", (event) => {
      if (!echo && event) setRate(event.rate, { announce: false });
    }),
    bus.on("loop", (event) => {
      if (echo || !event) return;
      if (JSON.stringify(event.loop || null) !== loopKey) setLoop(event.loop, { announce: false });
    }),
    bus.on("resize", () => layout()),
  ];
  const onShortcuts = () => updateTitles();
  if (ctx.model && ctx.model.on) ctx.model.on("change:shortcuts", onShortcuts);
  const resizeObserver = typeof ResizeObserver === "function" ? new ResizeObserver(() => layout()) : null;
  if (resizeObserver) resizeObserver.observe(viewsEl);

  window.__deepepil_player = counters;
  state.playing = false;
  state.rate = rate;
  state.frame = clampFrame(state.frame || 0);
  setLoop(state.loop, { announce: false });
  setView(view);
  updateTitles();
  updateTime();
  requestAnimationFrame(() => layout());
  onSeek(state.frame, false);

  function destroy() {
    if (destroyed) return;
    destroyed = true;
    if (rafId) cancelAnimationFrame(rafId);
    rafId = 0;
    for (const off of unsubscribe) off();
    if (ctx.model && ctx.model.off) ctx.model.off("change:shortcuts", onShortcuts);
    if (resizeObserver) resizeObserver.disconnect();
    for (const [name, fn] of Object.entries(actions)) if (ctx.actions[name] === fn) delete ctx.actions[name];
    for (const s of stores.values()) s.close();
    if (playing) {
      playing = false;
      state.playing = false;
      emit("play", { playing: false });
    }
    if (window.__deepepil_player === counters) delete window.__deepepil_player;
    el.remove();
  }

  return { el, destroy, counters, actions };
}
