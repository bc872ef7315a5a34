// 20_timeline.js: the canvas timeline of the labeling app (README "labeler/").
//
// createTimeline(ctx) -> {el, destroy()}: a ruler that seeks, a seizure lane, one track per region
// with the MOIs as bars (overlaps stacked in lanes) and the pending model suggestions in a hatched
// sub-row, an overview strip of the whole recording, zoom/scroll, drag edits and a label chooser.
// Edits go out as ctx.request({type: "edit", op, args}); main.js applies the reply's `changes` to
// ctx.labels before the promise resolves and emits bus "labels", on which the timeline re-indexes.
// The timeline never writes ctx.labels itself: an edit in flight is drawn as a dashed preview, and
// dropping the preview is the rollback when the edit fails.
//
// Benchmark and test hook: window.__deepepil_timeline = {lastRedrawMs, redraws, redraw(), geometry()}:
// lastRedrawMs is the duration of the latest canvas redraw, redraws their count, redraw() redraws
// now and returns its duration in ms (rasterization included: one pixel is read back). geometry()
// gives the layout in "timeline px" (y from the top of the ruler): {gutterPx, view: {startFrame,
// pxPerFrame}, rulerPx, seizureTop, tracksTop, tracks: [{region, top, laneTop, laneHeight, nLanes,
// suggestTop, bottom}], overviewTop, xOf(frame), clientXY(frame, y)}; clientXY turns a frame and a
// timeline y into viewport coordinates for page.mouse (scrolling the tracks into view first).
// The latest timeline created owns the hook.
//
// Three canvases share one layout: the ruler and seizure lane (sticky on top), the tracks (they
// scroll when the app gives the timeline less height than they need) and the overview (sticky at
// the bottom).

const TIMELINE_GUTTER_PX = 150;
const TIMELINE_RULER_PX = 26;
const TIMELINE_SEIZURE_PX = 18;
const TIMELINE_LANE_PX = 18;
const TIMELINE_SUGGEST_PX = 16;
const TIMELINE_TRACK_PAD_PX = 3;
const TIMELINE_OVERVIEW_PX = 30;
const TIMELINE_MAX_LANES = 3;
const TIMELINE_EDGE_PX = 6;
const TIMELINE_DRAG_PX = 3;
const TIMELINE_SNAP_PX = 6;
const TIMELINE_MAX_PX_PER_FRAME = 40;
const TIMELINE_BUTTON_PX = 15;

// ---------------------------------------------------------------------------------------------
// Pure helpers (no DOM): tested with node in tests/ui/test_timeline_js.py.

/** A frame as utilFormatTime writes it ("mm:ss.ff"), or without the frame part ("mm:ss", "h:mm:ss"). */
function timelineFormatTime(frame, fps, withFrames = true) {
  const text = utilFormatTime(frame, fps);
  return withFrames ? text : text.replace(/\.\d+$/, "");
}

/** Short badge of a laterality: "left" -> "L", "right" -> "R", "bilateral" -> "B"; "" for none. */
function timelineLateralityBadge(laterality) {
  return laterality ? String(laterality).charAt(0).toUpperCase() : "";
}

/** Initials of an author name: "anna.berg" -> "AB", "clin1" -> "CL". */
function timelineInitials(author) {
  if (!author) return "";
  const parts = String(author).split(/[\s._@-]+/).filter(Boolean);
  if (parts.length >= 2) return (parts[0][0] + parts[1][0]).toUpperCase();
  return String(author).slice(0, 2).toUpperCase();
}

/** First index i in the sorted numeric array `values` with values[i] >= x (or > x when `strict`). */
function timelineBisect(values, x, strict = false) {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (strict ? values[mid] <= x : values[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Index of interval rows for fast windows: rows sorted by (start_frame, end_frame, id), their
 * starts, the running maximum of their ends (so the first row that can reach a window is found by
 * bisection), and a lane per row (greedy stacking of overlaps, at most `maxLanes`).
 */
function timelineGroup(rows, maxLanes = TIMELINE_MAX_LANES) {
  const items = rows.slice().sort((a, b) => (a.start_frame - b.start_frame) || (a.end_frame - b.end_frame)
    || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const n = items.length;
  const starts = new Float64Array(n);
  const maxEnds = new Float64Array(n);
  const lanes = new Uint8Array(n);
  const laneEnds = [];
  let running = -Infinity;
  for (let i = 0; i < n; i++) {
    const row = items[i];
    starts[i] = row.start_frame;
    running = Math.max(running, row.end_frame);
    maxEnds[i] = running;
    let lane = laneEnds.findIndex((end) => end <= row.start_frame);
    if (lane < 0) {
      if (laneEnds.length < maxLanes) {
        lane = laneEnds.length;
        laneEnds.push(0);
      } else {
        lane = 0;
        for (let k = 1; k < laneEnds.length; k++) if (laneEnds[k] < laneEnds[lane]) lane = k;
      }
    }
    laneEnds[lane] = Math.max(laneEnds[lane], row.end_frame);
    lanes[i] = lane;
  }
  return { items, starts, maxEnds, lanes, nLanes: Math.max(1, laneEnds.length) };
}

/** [lo, hi): the rows of `group` that may overlap frames [fromFrame, toFrame); skip end <= fromFrame. */
function timelineWindow(group, fromFrame, toFrame) {
  return [timelineBisect(group.maxEnds, fromFrame, true), timelineBisect(group.starts, toFrame)];
}

/**
 * Tracks: one per vocabulary region in its order, then any region only the rows name.
 * `suggestions` holds the pending ones only (decision neither accepted nor rejected).
 */
function timelineBuildTracks(regions, moiRows, suggestionRows, maxLanes = TIMELINE_MAX_LANES) {
  const order = Array.isArray(regions) ? regions.slice() : [];
  const mois = new Map(order.map((r) => [r, []]));
  const suggestions = new Map(order.map((r) => [r, []]));
  const place = (map, row) => {
    if (!map.has(row.region)) {
      order.push(row.region);
      mois.set(row.region, []);
      suggestions.set(row.region, []);
    }
    map.get(row.region).push(row);
  };
  for (const row of moiRows) place(mois, row);
  for (const row of suggestionRows) {
    if (row.decision !== "accepted" && row.decision !== "rejected") place(suggestions, row);
  }
  return order.map((region) => ({
    region,
    mois: timelineGroup(mois.get(region), maxLanes),
    suggestions: timelineGroup(suggestions.get(region), 1),
  }));
}

/** Vertical layout (CSS px) of the ruler, the seizure lane, the tracks and the overview. */
function timelineLayout(tracks) {
  let y = TIMELINE_RULER_PX;
  const seizureTop = y;
  y += TIMELINE_SEIZURE_PX;
  const out = [];
  for (const track of tracks) {
    const top = y;
    const laneTop = top + TIMELINE_TRACK_PAD_PX;
    const nLanes = track.mois.nLanes;
    let bottom = laneTop + nLanes * TIMELINE_LANE_PX;
    let suggestTop = -1;
    if (track.suggestions.items.length) {
      suggestTop = bottom;
      bottom += TIMELINE_SUGGEST_PX;
    }
    bottom += TIMELINE_TRACK_PAD_PX;
    out.push({ top, laneTop, nLanes, suggestTop, bottom });
    y = bottom;
  }
  const tracksBottom = y;
  return { seizureTop, tracksTop: seizureTop + TIMELINE_SEIZURE_PX, tracksBottom, tracks: out,
    overviewTop: tracksBottom + 4, height: tracksBottom + 4 + TIMELINE_OVERVIEW_PX + 2 };
}

/** Index of the track at y (CSS px), or -1. */
function timelineTrackAt(layout, y) {
  for (let i = 0; i < layout.tracks.length; i++) {
    const t = layout.tracks[i];
    if (y >= t.top && y < t.bottom) return i;
  }
  return -1;
}

/** The view clamped: zoom between "whole recording" and TIMELINE_MAX_PX_PER_FRAME, start inside. */
function timelineClampView(view, nFrames, widthPx) {
  const n = Math.max(1, nFrames);
  const w = Math.max(1, widthPx);
  const fit = w / n;
  const pxPerFrame = Math.min(Math.max(view.pxPerFrame || fit, fit), Math.max(fit, TIMELINE_MAX_PX_PER_FRAME));
  const visible = w / pxPerFrame;
  const startFrame = Math.min(Math.max(view.startFrame || 0, 0), Math.max(0, n - visible));
  return { startFrame, pxPerFrame };
}

/** Zoom by `factor` keeping `anchorFrame` at `anchorPx` (px from the left of the track area). */
function timelineZoomAt(view, factor, anchorFrame, anchorPx, nFrames, widthPx) {
  const pxPerFrame = timelineClampView({ startFrame: 0, pxPerFrame: view.pxPerFrame * factor }, nFrames, widthPx)
    .pxPerFrame;
  return timelineClampView({ startFrame: anchorFrame - anchorPx / pxPerFrame, pxPerFrame }, nFrames, widthPx);
}

/** The view showing frames [startFrame, endFrame) with `marginFraction` room on each side. */
function timelineViewFor(startFrame, endFrame, nFrames, widthPx, marginFraction = 0.1) {
  const span = Math.max(1, endFrame - startFrame);
  const total = span * (1 + 2 * marginFraction);
  const view = { startFrame: startFrame - span * marginFraction, pxPerFrame: widthPx / total };
  return timelineClampView(view, nFrames, widthPx);
}

/**
 * Ruler ticks for a zoom: {majorFrames, minorFrames, withFrames}. Major ticks are at least
 * `minLabelPx` apart (frame steps below one second, then 1 s ... 1 h); minor ticks divide them.
 */
function timelineTickStep(pxPerFrame, fps, minLabelPx = 78) {
  const rate = fps > 0 ? fps : 30;
  const candidates = [1, 2, 5, 10, 15].filter((f) => f < rate);
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200]) candidates.push(s * rate);
  let major = candidates[candidates.length - 1];
  for (const c of candidates) {
    if (c * pxPerFrame >= minLabelPx) {
      major = c;
      break;
    }
  }
  let minor = major;
  for (const c of candidates) {
    if (c >= major) break;
    const ratio = major / c;
    if (c * pxPerFrame >= 7 && Math.abs(ratio - Math.round(ratio)) < 1e-6) {
      minor = c;
      break;
    }
  }
  return { majorFrames: major, minorFrames: minor, withFrames: major < rate || major % rate > 1e-6 };
}

/**
 * New [start_frame, end_frame) of an interval after a drag of `deltaFrames`: mode "move" keeps
 * the length, "start"/"end" move one edge; always inside [0, nFrames) and at least one frame long.
 */
function timelineDragResult(mode, startFrame, endFrame, deltaFrames, nFrames) {
  const d = Math.round(deltaFrames);
  if (mode === "move") {
    const length = endFrame - startFrame;
    const start = Math.min(Math.max(startFrame + d, 0), Math.max(0, nFrames - length));
    return { start_frame: start, end_frame: start + length };
  }
  if (mode === "start") {
    return { start_frame: Math.min(Math.max(startFrame + d, 0), endFrame - 1), end_frame: endFrame };
  }
  return { start_frame: startFrame, end_frame: Math.max(Math.min(endFrame + d, nFrames), startFrame + 1) };
}

/** The frame in `targets` nearest to `frame` within `tolerance` frames, else `frame`. */
function timelineSnap(frame, targets, tolerance) {
  let best = frame;
  let bestDistance = tolerance;
  for (const t of targets) {
    const distance = Math.abs(t - frame);
    if (distance <= bestDistance) {
      best = t;
      bestDistance = distance;
    }
  }
  return best;
}

/** Labels of a region from the vocabulary (`labels` by region, or one list for all). */
function timelineLabelsFor(vocabulary, region) {
  const labels = (vocabulary && vocabulary.labels) || [];
  if (Array.isArray(labels)) return labels.slice();
  if (Array.isArray(labels[region]) && labels[region].length) return labels[region].slice();
  return [...new Set(Object.values(labels).flat())];
}

/** `labels` matching the typed `query`: prefix matches first, then word starts, then substrings. */
function timelineFilterLabels(labels, query) {
  const q = String(query || "").trim().toLowerCase();
  if (!q) return labels.slice();
  const rank = (label) => {
    const l = label.toLowerCase();
    if (l.startsWith(q)) return 0;
    if (l.split(/[\s/-]+/).some((w) => w.startsWith(q))) return 1;
    return l.includes(q) ? 2 : -1;
  };
  return labels.map((label, i) => [rank(label), i, label]).filter((r) => r[0] >= 0)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((r) => r[2]);
}

/** Laterality implied by a region's name ("left upper limb" -> "left"), else `fallback`. */
function timelineDefaultLaterality(region, lateralities, fallback = null) {
  const first = String(region || "").split(/\s+/)[0].toLowerCase();
  return (lateralities || []).includes(first) ? first : fallback;
}

// ---------------------------------------------------------------------------------------------
// DOM helpers.

/** utilEl with attributes: timelineNode("button", "de-x", {type: "button"}, "text"). */
function timelineNode(tag, className, attrs, text) {
  const node = utilEl(tag, className, text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

/** Theme colours from the CSS variables of timeline.css (which fall back to the shell's and JupyterLab's). */
function timelineTheme(el) {
  const cs = getComputedStyle(el);
  const v = (name, fallback) => cs.getPropertyValue(name).trim() || fallback;
  return {
    bg: v("--de-timeline-bg", "#ffffff"), fg: v("--de-timeline-fg", "#1f2328"),
    muted: v("--de-timeline-muted", "#6e7781"), border: v("--de-timeline-border", "#d0d7de"),
    accent: v("--de-timeline-accent", "#0969da"), track: v("--de-timeline-track", "#f6f8fa"),
    trackAlt: v("--de-timeline-track-alt", "#ffffff"), playhead: v("--de-timeline-playhead", "#e5484d"),
    seizure: v("--de-timeline-seizure", "#c2255c"), accept: v("--de-timeline-accept", "#1a7f37"),
    reject: v("--de-timeline-reject", "#cf222e"), font: v("--de-timeline-font", "system-ui, sans-serif"),
  };
}

/**
 * The label chooser popup in `host`: region, type-to-filter label list, laterality.
 * opts: {vocabulary, region, label, laterality, title, detail, left, top | bottom, onDone(choice), onCancel()}.
 * Keys: typing filters, Up/Down pick, Enter confirms, Escape cancels, 0-3 set the laterality.
 */
function timelineOpenChooser(host, opts) {
  const vocab = opts.vocabulary || {};
  const regions = (vocab.regions && vocab.regions.length) ? vocab.regions.slice() : [opts.region];
  if (opts.region && !regions.includes(opts.region)) regions.push(opts.region);
  const lateralities = Array.isArray(vocab.laterality) ? vocab.laterality : ["left", "right", "bilateral"];
  let region = opts.region || regions[0];
  let laterality = opts.laterality !== undefined ? opts.laterality : timelineDefaultLaterality(region, lateralities);
  let shown = [];
  let active = 0;

  const box = timelineNode("div", "de-timeline-chooser", { role: "dialog", "aria-label": opts.title });
  const head = timelineNode("div", "de-timeline-chooser-head");
  head.append(timelineNode("strong", "", {}, opts.title), timelineNode("span", "de-timeline-chooser-detail", {},
    opts.detail || ""));
  const regionSelect = timelineNode("select", "de-timeline-chooser-region", { "aria-label": "Region" });
  for (const r of regions) regionSelect.append(timelineNode("option", "", { value: r }, r));
  regionSelect.value = region;
  const filter = timelineNode("input", "de-timeline-chooser-filter",
    { type: "text", placeholder: "Type to filter labels…", "aria-label": "Filter labels", spellcheck: "false" });
  const list = timelineNode("ul", "de-timeline-chooser-list", { role: "listbox", "aria-label": "Labels" });
  const latRow = timelineNode("div", "de-timeline-chooser-lat", { role: "radiogroup", "aria-label": "Laterality" });
  const latOptions = [null, ...lateralities];
  const latButtons = latOptions.map((value, i) => {
    const button = timelineNode("button", "de-timeline-chooser-latbtn", { type: "button", role: "radio",
      title: `${value || "no laterality"} (key ${i})` }, value || "none");
    button.addEventListener("click", () => setLaterality(value));
    latRow.append(button);
    return button;
  });
  const foot = timelineNode("div", "de-timeline-chooser-foot");
  const ok = timelineNode("button", "de-timeline-chooser-ok", { type: "button", title: "Enter" }, opts.okText || "OK");
  const cancel = timelineNode("button", "de-timeline-chooser-cancel", { type: "button", title: "Escape" }, "Cancel");
  foot.append(timelineNode("span", "de-timeline-chooser-hint", {},
    `↑↓ label · 0–${latOptions.length - 1} laterality`), cancel, ok);
  box.append(head, regionSelect, filter, list, latRow, foot);

  function setLaterality(value) {
    laterality = value;
    latButtons.forEach((b, i) => {
      b.setAttribute("aria-checked", String(latOptions[i] === value));
      b.classList.toggle("de-timeline-chooser-latbtn--on", latOptions[i] === value);
    });
  }
  function renderList(keepLabel) {
    const labels = timelineLabelsFor(vocab, region);
    shown = timelineFilterLabels(labels, filter.value);
    const keep = keepLabel ? shown.indexOf(keepLabel) : -1;
    active = keep >= 0 ? keep : Math.min(active, Math.max(0, shown.length - 1));
    list.replaceChildren(...shown.map((label, i) => {
      const li = timelineNode("li", i === active ? "de-timeline-chooser-item de-timeline-chooser-item--on"
        : "de-timeline-chooser-item", { role: "option", "aria-selected": String(i === active) }, label);
      li.addEventListener("mousedown", (e) => e.preventDefault());
      li.addEventListener("click", () => {
        active = i;
        done();
      });
      return li;
    }));
    if (!shown.length) list.append(timelineNode("li", "de-timeline-chooser-empty", {}, "no label matches"));
    const on = list.children[active];
    if (on && on.scrollIntoView) on.scrollIntoView({ block: "nearest" });
  }
  let closed = false;
  function close() {
    if (closed) return;
    closed = true;
    document.removeEventListener("pointerdown", onOutside, true);
    box.remove();
  }
  function done() {
    const label = shown[active];
    if (!label) {
      filter.focus();
      return;
    }
    close();
    opts.onDone({ region, label, laterality });
  }
  function cancelChooser() {
    close();
    if (opts.onCancel) opts.onCancel();
  }
  function onOutside(event) {
    if (!box.contains(event.target)) cancelChooser();
  }
  box.addEventListener("keydown", (event) => {
    event.stopPropagation(); // the app's shortcuts and JupyterLab's must not see the typing
    const digit = /^[0-9]$/.test(event.key) ? Number(event.key) : -1;
    if (event.key === "Escape") cancelChooser();
    else if (event.key === "Enter" && event.target !== cancel) done();
    else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      active = Math.min(Math.max(active + (event.key === "ArrowDown" ? 1 : -1), 0), Math.max(0, shown.length - 1));
      renderList();
    } else if (digit >= 0 && digit < latOptions.length && !event.ctrlKey && !event.altKey && !event.metaKey) {
      setLaterality(latOptions[digit]);
    } else return;
    event.preventDefault();
  });
  box.addEventListener("keyup", (event) => event.stopPropagation());
  filter.addEventListener("input", () => {
    active = 0;
    renderList();
  });
  regionSelect.addEventListener("change", () => {
    region = regionSelect.value;
    setLaterality(timelineDefaultLaterality(region, lateralities, laterality));
    renderList(shown[active]);
  });
  ok.addEventListener("click", done);
  cancel.addEventListener("click", cancelChooser);

  box.style.left = `${Math.max(0, opts.left || 0)}px`;
  if (opts.bottom !== undefined) box.style.bottom = `${opts.bottom}px`;
  else box.style.top = `${opts.top || 0}px`;
  host.append(box);
  setLaterality(laterality);
  renderList(opts.label);
  const maxLeft = host.clientWidth - box.offsetWidth - 4;
  if (maxLeft >= 0 && box.offsetLeft > maxLeft) box.style.left = `${maxLeft}px`;
  filter.focus({ preventScroll: true });
  setTimeout(() => document.addEventListener("pointerdown", onOutside, true), 0);
  return { close, el: box };
}

// ---------------------------------------------------------------------------------------------

/** The timeline part: see the top of this file. */
function createTimeline(ctx) {
  const el = timelineNode("div", "de-timeline");
  const toolbar = timelineNode("div", "de-timeline-toolbar");
  const button = (text, title, action) => {
    const b = timelineNode("button", "de-timeline-btn", { type: "button", title, "aria-label": title }, text);
    b.addEventListener("click", () => ctx.actions[action] && ctx.actions[action]());
    return b;
  };
  const rangeText = timelineNode("span", "de-timeline-range", { "aria-live": "off" });
  const markText = timelineNode("span", "de-timeline-mark");
  toolbar.append(button("−", "Zoom out (zoom_out)", "zoom_out"), button("+", "Zoom in (zoom_in)", "zoom_in"),
    button("Fit", "Show the whole recording (zoom_fit)", "zoom_fit"),
    button("Sel", "Zoom to the selection (zoom_selection)", "zoom_selection"), rangeText, markText,
    timelineNode("span", "de-timeline-hint", {},
      "Drag on a track to add · drag edges to resize · double-click to relabel · Ctrl+wheel zooms"));
  const stage = timelineNode("div", "de-timeline-stage");
  const topCanvas = timelineNode("canvas", "de-timeline-canvas de-timeline-canvas--top", { role: "img",
    "aria-label": "Timeline ruler and seizure markers" });
  const canvas = timelineNode("canvas", "de-timeline-canvas de-timeline-canvas--tracks", { tabindex: "0", role: "img",
    "aria-label": "Timeline: one track per body region with the movements of interest" });
  const bottomCanvas = timelineNode("canvas", "de-timeline-canvas de-timeline-canvas--bottom", { role: "img",
    "aria-label": "Overview of the whole recording" });
  const canvases = [topCanvas, canvas, bottomCanvas];
  const tip = timelineNode("div", "de-timeline-tip", { role: "tooltip" });
  const announce = timelineNode("div", "de-timeline-sr", { "aria-live": "polite" });
  stage.append(topCanvas, canvas, bottomCanvas);
  el.append(toolbar, stage, tip, announce);
  const contexts = canvases.map((c) => c.getContext("2d"));
  let g = contexts[1]; // the context being drawn: drawing code uses timeline px (see use())

  const S = {
    view: { startFrame: 0, pxPerFrame: 0 }, fitted: false, widthPx: 0, heightPx: 0, dpr: 1,
    tracks: [], layout: timelineLayout([]), theme: null,
    hover: null, hoverTrack: -1, focusTrack: 0, drag: null, pending: new Map(), nextTemp: 1,
    markIn: null, ghost: null, buttons: [], chooser: null, raf: 0, destroyed: false, overview: null, overviewKey: "",
    textWidths: new Map(), patterns: new Map(), contrast: new Map(), tipTimer: 0, pan: 0, lastPointer: null,
    labelsVersion: 0,
  };
  const stats = { lastRedrawMs: 0, redraws: 0, redraw: () => drawNow(true), geometry: () => ({
    gutterPx: TIMELINE_GUTTER_PX, view: { ...S.view }, rulerPx: TIMELINE_RULER_PX, seizureTop: S.layout.seizureTop,
    tracksTop: S.layout.tracksTop, overviewTop: S.layout.overviewTop, xOf, clientXY,
    tracks: S.tracks.map((t, i) => ({ region: t.region, laneHeight: TIMELINE_LANE_PX, ...S.layout.tracks[i] })),
  }) };
  window.__deepepil_timeline = stats;

  const rec = () => ctx.state.recording || null;
  const nFrames = () => Math.max(1, (rec() && rec().n_frames) || 1);
  const fps = () => (rec() && rec().fps) || 30;
  const vocabulary = () => ctx.model.get("vocabulary") || {};
  const areaWidth = () => Math.max(1, S.widthPx - TIMELINE_GUTTER_PX);
  const xOf = (frame) => TIMELINE_GUTTER_PX + (frame - S.view.startFrame) * S.view.pxPerFrame;
  const frameAt = (x) => S.view.startFrame + (x - TIMELINE_GUTTER_PX) / S.view.pxPerFrame;
  const visibleFrames = () => areaWidth() / S.view.pxPerFrame;
  const fmt = (frame) => utilFormatTime(frame, fps());
  const selected = (kind, id) => { const s = ctx.state.selection; return !!s && s.kind === kind && s.id === id; };

  function select(selection) {
    ctx.select(selection);
    scheduleDraw();
  }
  function seek(frame) {
    ctx.seek(Math.min(Math.max(Math.floor(frame), 0), nFrames() - 1), "timeline");
  }
  function setView(view) {
    S.view = timelineClampView(view, nFrames(), areaWidth());
    scheduleDraw();
  }

  // --- data ---------------------------------------------------------------------------------
  function rebuild() {
    S.tracks = timelineBuildTracks(vocabulary().regions, [...ctx.labels.mois.values()],
      [...ctx.labels.suggestions.values()]);
    S.layout = timelineLayout(S.tracks);
    S.labelsVersion += 1;
    S.overviewKey = "";
    S.patterns.clear();
    resize();
  }
  function trackIndexOf(region) {
    return S.tracks.findIndex((t) => t.region === region);
  }
  function seizures() {
    return [...ctx.labels.seizures.values()].sort((a, b) => a.onset_frame - b.onset_frame);
  }
  /**
   * The seizure that mark_onset / mark_offset change: the selected one, else the one holding the
   * playhead; for the onset, else the next one that starts after the playhead (moving its onset
   * earlier); for the offset, else the last one that starts before the playhead. Null: none (a
   * mark_onset then adds a seizure).
   */
  function currentSeizure(frame, forOffset) {
    const sel = ctx.state.selection;
    if (sel && sel.kind === "seizure" && ctx.labels.seizures.has(sel.id)) return ctx.labels.seizures.get(sel.id);
    const list = seizures();
    const inside = list.filter((s) => s.onset_frame <= frame && (s.offset_frame == null || frame < s.offset_frame));
    if (inside.length) return inside[inside.length - 1];
    if (forOffset) {
      const before = list.filter((s) => s.onset_frame <= frame);
      return before.length ? before[before.length - 1] : null;
    }
    return list.find((s) => s.onset_frame > frame) || null;
  }

  // --- sizing -------------------------------------------------------------------------------
  /** The canvas holding timeline y, and that canvas's top in timeline px. */
  function canvasAt(y) {
    const L = S.layout;
    if (y < L.tracksTop) return [topCanvas, 0];
    if (y >= L.tracksBottom) return [bottomCanvas, L.tracksBottom];
    return [canvas, L.tracksTop];
  }
  /** Viewport coordinates of `frame` at timeline y (the tracks are scrolled to show y first). */
  function clientXY(frame, y) {
    const [c, offset] = canvasAt(y);
    if (c === canvas) {
      const inStage = y - S.layout.tracksTop + canvas.offsetTop;
      const visibleTop = stage.scrollTop + S.layout.tracksTop;
      const visibleBottom = stage.scrollTop + stage.clientHeight - (S.layout.height - S.layout.tracksBottom);
      if (inStage < visibleTop || inStage > visibleBottom) stage.scrollTop = inStage - (visibleTop + visibleBottom) / 2
        + stage.scrollTop;
    }
    const r = c.getBoundingClientRect();
    return [r.left + xOf(frame), r.top + (y - offset)];
  }
  function resize() {
    const width = Math.floor(stage.clientWidth || el.clientWidth || 0);
    const L = S.layout;
    const dpr = window.devicePixelRatio || 1;
    const heights = [L.tracksTop, L.tracksBottom - L.tracksTop, L.height - L.tracksBottom];
    const wasFit = S.fitted && S.view.pxPerFrame <= areaWidth() / nFrames() * 1.0001;
    if (width !== S.widthPx || L.height !== S.heightPx || dpr !== S.dpr) {
      S.widthPx = width;
      S.heightPx = L.height;
      S.dpr = dpr;
      canvases.forEach((c, i) => {
        c.width = Math.max(1, Math.round(width * dpr));
        c.height = Math.max(1, Math.round(heights[i] * dpr));
        c.style.height = `${heights[i]}px`;
      });
      S.overviewKey = "";
    }
    if ((!S.fitted || wasFit) && width > TIMELINE_GUTTER_PX && rec()) {
      // First sizing, or the whole recording was shown: show it all at the new width too.
      S.view = timelineClampView({ startFrame: 0, pxPerFrame: 0 }, nFrames(), areaWidth());
      S.fitted = true;
    } else {
      S.view = timelineClampView(S.view, nFrames(), areaWidth());
    }
    scheduleDraw();
  }
  /** Draw on canvas `i` (0 top, 1 tracks, 2 overview) in timeline px. */
  function use(i, th) {
    g = contexts[i];
    const top = [0, S.layout.tracksTop, S.layout.tracksBottom][i];
    g.setTransform(S.dpr, 0, 0, S.dpr, 0, -top * S.dpr);
    g.textBaseline = "middle";
    g.fillStyle = th.bg;
    g.fillRect(0, top, S.widthPx, canvases[i].height / S.dpr);
  }

  // --- drawing ------------------------------------------------------------------------------
  function scheduleDraw() {
    if (S.raf || S.destroyed) return;
    S.raf = requestAnimationFrame(() => {
      S.raf = 0;
      drawNow();
    });
  }
  /** Width of `text` in the current font (cached per font and text). */
  function textWidth(text) {
    const key = `${g.font}|${text}`;
    let w = S.textWidths.get(key);
    if (w === undefined) {
      w = g.measureText(text).width;
      if (S.textWidths.size > 4000) S.textWidths.clear();
      S.textWidths.set(key, w);
    }
    return w;
  }
  function fitText(text, maxW) {
    const w = textWidth(text);
    if (w <= maxW) return text;
    const n = Math.floor(text.length * maxW / w) - 1;
    return n >= 3 ? `${text.slice(0, n)}…` : "";
  }
  function textColorOn(color) {
    let c = S.contrast.get(color);
    if (c) return c;
    g.fillStyle = "#000";
    g.fillStyle = color;
    const hex = /^#([0-9a-f]{6})/i.exec(g.fillStyle);
    const n = hex ? parseInt(hex[1], 16) : 0x888888;
    const lum = 0.2126 * ((n >> 16) & 255) + 0.7152 * ((n >> 8) & 255) + 0.0722 * (n & 255);
    c = lum > 150 ? "#111111" : "#ffffff";
    S.contrast.set(color, c);
    return c;
  }
  function hatch(color) {
    let p = S.patterns.get(color);
    if (p) return p;
    const tile = document.createElement("canvas");
    tile.width = tile.height = 8;
    const t = tile.getContext("2d");
    t.globalAlpha = 0.18;
    t.fillStyle = color;
    t.fillRect(0, 0, 8, 8);
    t.globalAlpha = 0.75;
    t.strokeStyle = color;
    t.lineWidth = 1.6;
    t.beginPath();
    t.moveTo(-2, 10);
    t.lineTo(10, -2);
    t.moveTo(-2, 2);
    t.lineTo(2, -2);
    t.moveTo(6, 10);
    t.lineTo(10, 6);
    t.stroke();
    p = g.createPattern(tile, "repeat");
    S.patterns.set(color, p);
    return p;
  }
  function roundRect(x, y, w, h, r) {
    g.beginPath();
    if (g.roundRect) g.roundRect(x, y, w, h, r);
    else g.rect(x, y, w, h);
  }

  /** [x0, x1] of a bar in whole px (at least 1 px wide), or null when it is outside the track area. */
  function barSpan(row) {
    const x0 = xOf(row.start_frame);
    const x1 = xOf(row.end_frame);
    if (x1 < TIMELINE_GUTTER_PX || x0 > S.widthPx) return null;
    const a = Math.round(x0);
    return [a, Math.max(a + 1, Math.round(x1))];
  }
  /** The 2 px outline of a selected bar or seizure. */
  function strokeSelected(x, y, w, h, th) {
    g.strokeStyle = th.fg;
    g.lineWidth = 2;
    g.strokeRect(x + 1, y + 1, Math.max(1, w - 2), h - 2);
  }

  /** One MOI bar. mode: "" | "pending" | "deleting" | "ghost". */
  function drawMoi(row, y, h, mode, th) {
    const span = barSpan(row);
    if (!span) return;
    const [x0, x1] = span;
    const w = x1 - x0;
    const color = utilRegionColor(row.region);
    const isSel = selected("moi", row.id);
    const isHover = S.hover && S.hover.kind === "moi" && S.hover.row.id === row.id;
    g.globalAlpha = mode === "deleting" ? 0.25 : mode === "ghost" || mode === "pending" ? 0.6 : 0.9;
    g.fillStyle = color;
    if (w < 4) {
      g.fillRect(x0, y, w, h);
    } else {
      roundRect(x0, y, w, h, 3);
      g.fill();
    }
    g.globalAlpha = 1;
    if (mode) {
      g.setLineDash([4, 3]);
      g.strokeStyle = th.fg;
      g.lineWidth = 1.2;
      g.strokeRect(x0 + 0.5, y + 0.5, w - 1, h - 1);
      g.setLineDash([]);
    } else if (isSel) {
      strokeSelected(x0, y, w, h, th);
    } else if (isHover) {
      g.strokeStyle = th.fg;
      g.lineWidth = 1;
      g.strokeRect(x0 + 0.5, y + 0.5, w - 1, h - 1);
    }
    if (w < 16 || mode === "deleting") return;
    // Text sticks to the visible part of the bar.
    const left = Math.max(x0, TIMELINE_GUTTER_PX) + 4;
    const right = Math.min(x1, S.widthPx) - 4;
    let room = right - left;
    if (room < 10) return;
    const ink = textColorOn(color);
    let tx = left;
    const badge = timelineLateralityBadge(row.laterality);
    if (badge && room >= 14) {
      g.fillStyle = ink;
      g.globalAlpha = 0.22;
      roundRect(tx, y + 3, 13, h - 6, 2);
      g.fill();
      g.globalAlpha = 1;
      g.font = `600 10px ${th.font}`;
      g.textAlign = "center";
      g.fillText(badge, tx + 6.5, y + h / 2 + 0.5);
      g.textAlign = "left";
      tx += 17;
      room -= 17;
    }
    g.font = `11px ${th.font}`;
    g.fillStyle = ink;
    const initials = timelineInitials(row.author);
    const labelW = textWidth(row.label || "");
    if (initials && room > labelW + 26) {
      g.globalAlpha = 0.7;
      g.textAlign = "right";
      g.fillText(initials, right, y + h / 2 + 0.5);
      g.textAlign = "left";
      g.globalAlpha = 1;
    }
    const text = fitText(row.label || "", room);
    if (text) g.fillText(text, tx, y + h / 2 + 0.5);
  }

  /**
   * The visible MOIs of one track, batched: every bar of a track has the track's colour, so the
   * plain bars are one path (bars under 4 px merged into runs per lane) and one fill, then their
   * badges and labels in one font each. Selected, hovered, pending and dragged bars come on top.
   */
  function drawTrackMois(group, lt, fromFrame, toFrame, draggingId, th) {
    const [lo, hi] = timelineWindow(group, fromFrame, toFrame);
    if (lo >= hi) return;
    const h = TIMELINE_LANE_PX - 2;
    const pendingBusy = S.pending.size > 0;
    const sel = ctx.state.selection;
    const selId = sel && sel.kind === "moi" ? sel.id : undefined;
    const hoverId = S.hover && S.hover.kind === "moi" ? S.hover.row.id : undefined;
    const runStart = new Float64Array(lt.nLanes).fill(NaN);
    const runEnd = new Float64Array(lt.nLanes);
    const texts = [];
    const lastText = new Array(lt.nLanes).fill(null); // a label ends where the next bar of its lane starts
    const special = [];
    const origin = S.view.startFrame;
    const scale = S.view.pxPerFrame;
    const right = S.widthPx;
    const laneY = (i) => lt.laneTop + group.lanes[i] * TIMELINE_LANE_PX + 1;
    const color = utilRegionColor(group.items[lo].region);
    const runs = new Path2D();
    const bars = new Path2D();
    const flush = (lane) => {
      const a = Math.round(runStart[lane]);
      runs.rect(a, lt.laneTop + lane * TIMELINE_LANE_PX + 1, Math.max(1, Math.round(runEnd[lane]) - a), h);
    };
    for (let i = lo; i < hi; i++) {
      const row = group.items[i];
      if (row.end_frame <= fromFrame) continue;
      if (row.id === selId || row.id === hoverId || row.id === draggingId
        || (pendingBusy && S.pending.has(`moi:${row.id}`))) {
        special.push(i);
        continue;
      }
      const x0 = TIMELINE_GUTTER_PX + (row.start_frame - origin) * scale;
      const x1 = TIMELINE_GUTTER_PX + (row.end_frame - origin) * scale;
      const lane = group.lanes[i];
      const prev = lastText[lane];
      if (prev && x0 < prev.end) prev.end = x0;
      if (x1 - x0 < 4) {
        if (runStart[lane] === runStart[lane] && x0 <= runEnd[lane] + 1) {
          if (x1 > runEnd[lane]) runEnd[lane] = x1;
        } else {
          if (runStart[lane] === runStart[lane]) flush(lane);
          runStart[lane] = x0;
          runEnd[lane] = x1;
        }
        continue;
      }
      const a = Math.round(x0);
      const w = Math.round(x1) - a;
      const y = laneY(i);
      // A 1 px gap at the end keeps touching bars apart (cheaper than stroking outlines).
      if (w >= 10 && bars.roundRect) bars.roundRect(a, y, w - 1, h, 3);
      else bars.rect(a, y, w - 1, h);
      if (w >= 16) {
        lastText[lane] = { i, end: x1 };
        texts.push(lastText[lane]);
      }
    }
    for (let lane = 0; lane < lt.nLanes; lane++) if (runStart[lane] === runStart[lane]) flush(lane);
    g.fillStyle = color;
    g.globalAlpha = 0.9;
    g.fill(runs);
    g.fill(bars);
    g.globalAlpha = 1;
    if (texts.length) drawBarTexts(group, texts, laneY, h, color, th, right);
    for (const i of special) {
      const row = group.items[i];
      const y = laneY(i);
      if (row.id === draggingId) {
        drawMoi(row, y, h, "deleting", th);
        drawMoi({ ...row, ...S.drag.preview }, y, h, "ghost", th);
      } else if (pendingBusy && S.pending.has(`moi:${row.id}`)) {
        const p = S.pending.get(`moi:${row.id}`);
        drawMoi(row, y, h, "deleting", th);
        if (p.row && p.row.region === row.region) drawMoi(p.row, y, h, "pending", th);
      } else drawMoi(row, y, h, "", th);
    }
  }

  /** Badges, labels and author initials of the bars `indices` ({i, end}: text sticks to the visible part). */
  function drawBarTexts(group, indices, laneY, h, color, th, right) {
    const ink = textColorOn(color);
    const spans = [];
    for (const { i, end: barEnd } of indices) {
      const left = Math.max(xOf(group.items[i].start_frame), TIMELINE_GUTTER_PX) + 4;
      const end = Math.min(barEnd, right) - 4;
      if (end - left >= 10) spans.push([i, left, end]);
    }
    g.fillStyle = ink;
    g.globalAlpha = 0.22;
    g.beginPath();
    for (const span of spans) {
      const row = group.items[span[0]];
      if (row.laterality && span[2] - span[1] >= 14) {
        if (g.roundRect) g.roundRect(span[1], laneY(span[0]) + 3, 13, h - 6, 2);
        else g.rect(span[1], laneY(span[0]) + 3, 13, h - 6);
        span.push(true);
      }
    }
    g.fill();
    g.globalAlpha = 1;
    g.font = `600 10px ${th.font}`;
    g.textAlign = "center";
    for (const span of spans) {
      if (!span[3]) continue;
      g.fillText(timelineLateralityBadge(group.items[span[0]].laterality), span[1] + 6.5, laneY(span[0]) + h / 2 + 0.5);
    }
    g.textAlign = "left";
    g.font = `11px ${th.font}`;
    const initials = [];
    for (const [i, left, end, badge] of spans) {
      const row = group.items[i];
      const tx = badge ? left + 17 : left;
      const room = end - tx;
      if (room < 10) continue;
      const label = row.label || "";
      const text = fitText(label, room);
      if (text) g.fillText(text, tx, laneY(i) + h / 2 + 0.5);
      if (row.author && room > textWidth(label) + 26) initials.push([i, end]);
    }
    if (initials.length) {
      g.globalAlpha = 0.7;
      g.textAlign = "right";
      for (const [i, end] of initials) g.fillText(timelineInitials(group.items[i].author), end, laneY(i) + h / 2 + 0.5);
      g.textAlign = "left";
      g.globalAlpha = 1;
    }
  }

  function drawSuggestion(row, y, h, pending, th) {
    const span = barSpan(row);
    if (!span) return;
    const [x0, x1] = span;
    const w = x1 - x0;
    const color = utilRegionColor(row.region);
    g.fillStyle = hatch(color);
    g.fillRect(x0, y, w, h);
    g.strokeStyle = color;
    g.lineWidth = 1;
    if (pending) g.setLineDash([3, 3]);
    g.strokeRect(x0 + 0.5, y + 0.5, w - 1, h - 1);
    g.setLineDash([]);
    const isSel = selected("suggestion", row.id);
    const isHover = S.hover && S.hover.kind === "suggestion" && S.hover.row.id === row.id;
    if (isSel) strokeSelected(x0, y, w, h, th);
    const left = Math.max(x0, TIMELINE_GUTTER_PX) + 3;
    const right = Math.min(x1, S.widthPx) - 3;
    if (right - left > 24) {
      g.font = `10px ${th.font}`;
      g.fillStyle = th.fg;
      const score = row.score != null ? ` ${Number(row.score).toFixed(2)}` : "";
      const lat = row.laterality ? ` ${timelineLateralityBadge(row.laterality)}` : "";
      const text = fitText(`✦ ${row.label}${lat}${score}`, right - left);
      if (text) g.fillText(text, left, y + h / 2 + 0.5);
    }
    if ((isSel || isHover) && !pending) {
      const bw = TIMELINE_BUTTON_PX;
      const inside = w >= 2 * bw + 6;
      let bx = inside ? Math.min(x1, S.widthPx) - 2 * bw - 3 : x1 + 2;
      bx = Math.max(bx, TIMELINE_GUTTER_PX + 1);
      const by = y + (h - bw) / 2;
      for (const [action, mark, color2] of [["accept", "✓", th.accept], ["reject", "✕", th.reject]]) {
        g.fillStyle = color2;
        roundRect(bx, by, bw, bw, 3);
        g.fill();
        g.fillStyle = "#ffffff";
        g.font = `bold 11px ${th.font}`;
        g.textAlign = "center";
        g.fillText(mark, bx + bw / 2, by + bw / 2 + 0.5);
        g.textAlign = "left";
        S.buttons.push({ x: bx, y: by, w: bw, h: bw, action, row });
        bx += bw + 2;
      }
    }
  }

  function drawRuler(th, fromFrame, toFrame) {
    const top = 0;
    const h = TIMELINE_RULER_PX;
    const step = timelineTickStep(S.view.pxPerFrame, fps());
    g.fillStyle = th.track;
    g.fillRect(TIMELINE_GUTTER_PX, top, S.widthPx, h);
    const loop = ctx.state.loop;
    if (loop) {
      g.fillStyle = th.accent;
      g.globalAlpha = 0.2;
      g.fillRect(xOf(loop[0]), top, xOf(loop[1]) - xOf(loop[0]), h);
      g.globalAlpha = 1;
    }
    g.strokeStyle = th.muted;
    g.lineWidth = 1;
    g.beginPath();
    const firstMinor = Math.floor(fromFrame / step.minorFrames) * step.minorFrames;
    for (let f = firstMinor; f <= toFrame; f += step.minorFrames) {
      const x = Math.round(xOf(f)) + 0.5;
      const major = Math.abs(f / step.majorFrames - Math.round(f / step.majorFrames)) < 1e-6;
      g.moveTo(x, h - (major ? 9 : 4));
      g.lineTo(x, h);
    }
    g.stroke();
    g.fillStyle = th.fg;
    g.font = `10.5px ${th.font}`;
    const firstMajor = Math.floor(fromFrame / step.majorFrames) * step.majorFrames;
    for (let f = firstMajor; f <= toFrame; f += step.majorFrames) {
      const x = xOf(f);
      if (x >= TIMELINE_GUTTER_PX - 2) g.fillText(timelineFormatTime(f, fps(), step.withFrames), x + 3, 9);
    }
    g.strokeStyle = th.border;
    g.beginPath();
    g.moveTo(TIMELINE_GUTTER_PX, h - 0.5);
    g.lineTo(S.widthPx, h - 0.5);
    g.stroke();
    if (S.markIn !== null) {
      const x = Math.round(xOf(S.markIn));
      const x2 = xOf(Math.max(S.markIn, ctx.state.frame) + 1);
      g.fillStyle = th.accent;
      g.globalAlpha = 0.25;
      g.fillRect(x, h - 8, Math.max(1, x2 - x), 8);
      g.globalAlpha = 1;
      g.beginPath();
      g.moveTo(x, h);
      g.lineTo(x, 2);
      g.lineTo(x + 16, 2);
      g.lineTo(x + 16, 12);
      g.lineTo(x, 12);
      g.fill();
      g.fillStyle = "#ffffff";
      g.font = `bold 9px ${th.font}`;
      g.fillText("IN", x + 2.5, 7.5);
    }
  }

  function drawSeizures(th, fromFrame, toFrame, tracksTop, tracksBottom) {
    const laneY = S.layout.seizureTop;
    const drag = S.drag && S.drag.mode && S.drag.mode.startsWith("seizure") && S.drag.moved ? S.drag : null;
    const list = seizures().map((s) => {
      const p = S.pending.get(`seizure:${s.id}`);
      if (drag && drag.row.id === s.id) return { row: { ...s, ...drag.preview }, mode: "ghost" };
      return p ? { row: p.row || s, mode: p.row ? "pending" : "deleting" } : { row: s, mode: "" };
    });
    for (const [key, p] of S.pending) {
      if (key.startsWith("seizure:new") && p.row) list.push({ row: p.row, mode: "pending" });
    }
    let i = 0;
    for (const { row, mode } of list) {
      i++;
      const end = row.offset_frame == null ? nFrames() : row.offset_frame;
      if (end < fromFrame || row.onset_frame > toFrame) continue;
      const x0 = Math.round(xOf(row.onset_frame));
      const x1 = Math.round(xOf(end));
      g.fillStyle = th.seizure;
      g.globalAlpha = mode === "deleting" ? 0.03 : 0.07;
      g.fillRect(x0, tracksTop, x1 - x0, tracksBottom - tracksTop);
      g.globalAlpha = mode === "deleting" ? 0.3 : 0.8;
      g.fillRect(x0, laneY + 3, Math.max(1, x1 - x0), TIMELINE_SEIZURE_PX - 6);
      g.globalAlpha = 1;
      if (mode) {
        g.setLineDash([4, 3]);
        g.strokeStyle = th.fg;
        g.strokeRect(x0 + 0.5, laneY + 3.5, Math.max(1, x1 - x0 - 1), TIMELINE_SEIZURE_PX - 7);
        g.setLineDash([]);
      }
      if (selected("seizure", row.id)) strokeSelected(x0, laneY + 2, x1 - x0, TIMELINE_SEIZURE_PX - 4, th);
      g.strokeStyle = th.seizure;
      g.lineWidth = 1.5;
      g.beginPath();
      g.moveTo(x0 + 0.5, laneY);
      g.lineTo(x0 + 0.5, tracksBottom);
      if (row.offset_frame != null) {
        g.moveTo(x1 - 0.5, laneY);
        g.lineTo(x1 - 0.5, tracksBottom);
      }
      g.stroke();
      const left = Math.max(x0, TIMELINE_GUTTER_PX) + 4;
      const room = Math.min(x1, S.widthPx) - 4 - left;
      if (room > 30) {
        g.fillStyle = "#ffffff";
        g.font = `600 10px ${th.font}`;
        const kind = row.seizure_type ? ` · ${row.seizure_type}` : "";
        const open = row.offset_frame == null ? " · offset not marked" : "";
        const name = mode === "pending" && !ctx.labels.seizures.has(row.id) ? "New seizure" : `Seizure ${i}`;
        const text = fitText(`${name}${kind}${open}`, room);
        if (text) g.fillText(text, left, laneY + TIMELINE_SEIZURE_PX / 2 + 0.5);
      }
    }
  }

  function drawOverview(th) {
    const top = S.layout.overviewTop;
    const h = TIMELINE_OVERVIEW_PX;
    const w = areaWidth();
    const key = `${w}x${h}@${S.dpr}:${S.labelsVersion}:${th.track}`;
    if (S.overviewKey !== key || !S.overview) {
      // The whole recording: one thin row per track, cached until the labels or the size change.
      const off = S.overview || document.createElement("canvas");
      off.width = Math.max(1, Math.round(w * S.dpr));
      off.height = Math.max(1, Math.round(h * S.dpr));
      const o = off.getContext("2d");
      o.setTransform(S.dpr, 0, 0, S.dpr, 0, 0);
      o.fillStyle = th.track;
      o.fillRect(0, 0, w, h);
      const scale = w / nFrames();
      const rowH = Math.max(1, Math.min(4, (h - 4) / Math.max(1, S.tracks.length)));
      S.tracks.forEach((track, t) => {
        o.fillStyle = utilRegionColor(track.region);
        const y = 2 + t * rowH;
        for (const row of track.mois.items) {
          o.fillRect(row.start_frame * scale, y, Math.max(1, (row.end_frame - row.start_frame) * scale), rowH - 0.5);
        }
      });
      for (const s of ctx.labels.seizures.values()) {
        o.fillStyle = th.seizure;
        const end = s.offset_frame == null ? nFrames() : s.offset_frame;
        o.fillRect(s.onset_frame * scale, h - 3, Math.max(1, (end - s.onset_frame) * scale), 3);
      }
      S.overview = off;
      S.overviewKey = key;
    }
    g.drawImage(S.overview, TIMELINE_GUTTER_PX, top, w, h);
    const scale = w / nFrames();
    const vx = TIMELINE_GUTTER_PX + S.view.startFrame * scale;
    const vw = Math.max(4, visibleFrames() * scale);
    g.fillStyle = th.accent;
    g.globalAlpha = 0.14;
    g.fillRect(vx, top, vw, h);
    g.globalAlpha = 1;
    g.strokeStyle = th.accent;
    g.lineWidth = 1.5;
    g.strokeRect(vx + 0.75, top + 0.75, vw - 1.5, h - 1.5);
    const px = TIMELINE_GUTTER_PX + ctx.state.frame * scale;
    g.fillStyle = th.playhead;
    g.fillRect(Math.round(px), top, 1.5, h);
    g.fillStyle = th.muted;
    g.font = `10px ${th.font}`;
    g.fillText("Overview", 10, top + h / 2);
  }

  /** Draw everything now; `flush` reads one pixel back so the time includes the rasterization. */
  function drawNow(flush = false) {
    const t0 = performance.now();
    if (S.destroyed) return 0;
    if ((window.devicePixelRatio || 1) !== S.dpr) resize();
    // The theme is read once (a style read every frame while playing is not free), again when
    // JupyterLab's theme changes (themeObserver); not cached until the timeline is in the page.
    const th = S.theme || timelineTheme(el);
    if (el.isConnected) S.theme = th;
    S.buttons = [];
    const L = S.layout;
    const W = S.widthPx;
    if (!rec() || W <= TIMELINE_GUTTER_PX) {
      for (let i = 0; i < 3; i++) use(i, th);
      use(0, th);
      g.fillStyle = th.muted;
      g.font = `12px ${th.font}`;
      g.fillText(rec() ? "" : "No recording open", 12, 14);
      return finish(t0, flush);
    }
    const fromFrame = S.view.startFrame;
    const toFrame = fromFrame + visibleFrames();

    // Top: ruler and seizure lane.
    use(0, th);
    g.fillStyle = th.fg;
    g.font = `600 11px ${th.font}`;
    g.fillText("Seizure", 10, L.seizureTop + TIMELINE_SEIZURE_PX / 2);
    g.fillStyle = th.muted;
    g.font = `10px ${th.font}`;
    g.fillText(`${fmt(ctx.state.frame)}  #${ctx.state.frame}`, 10, TIMELINE_RULER_PX / 2);
    g.save();
    clipArea(0, L.tracksTop);
    drawGridAndSeizures(th, fromFrame, toFrame);
    drawRuler(th, fromFrame, toFrame);
    drawPlayhead(th);
    g.restore();
    drawGutterEdge(th, 0, L.tracksTop);

    // Tracks: backgrounds and headers, then the visible MOIs and suggestions.
    use(1, th);
    const focus = focusedTrack();
    S.tracks.forEach((track, t) => {
      const lt = L.tracks[t];
      g.fillStyle = t % 2 ? th.trackAlt : th.track;
      g.fillRect(0, lt.top, W, lt.bottom - lt.top);
      if (t === focus) {
        g.fillStyle = th.accent;
        g.globalAlpha = 0.07;
        g.fillRect(0, lt.top, W, lt.bottom - lt.top);
        g.globalAlpha = 1;
        g.fillRect(0, lt.top, 3, lt.bottom - lt.top);
      }
      g.fillStyle = utilRegionColor(track.region);
      roundRect(10, lt.top + 8, 9, 9, 2);
      g.fill();
      g.fillStyle = th.fg;
      g.font = `12px ${th.font}`;
      g.fillText(fitText(track.region, TIMELINE_GUTTER_PX - 56), 25, lt.top + 13);
      g.fillStyle = th.muted;
      g.font = `10px ${th.font}`;
      g.textAlign = "right";
      g.fillText(String(track.mois.items.length), TIMELINE_GUTTER_PX - 8, lt.top + 13);
      if (lt.suggestTop >= 0) g.fillText(`${track.suggestions.items.length} sugg.`, TIMELINE_GUTTER_PX - 8,
        lt.suggestTop + TIMELINE_SUGGEST_PX / 2);
      g.textAlign = "left";
      g.strokeStyle = th.border;
      g.lineWidth = 1;
      g.beginPath();
      g.moveTo(0, lt.bottom - 0.5);
      g.lineTo(W, lt.bottom - 0.5);
      g.stroke();
    });
    g.save();
    clipArea(L.tracksTop, L.tracksBottom);
    drawGridAndSeizures(th, fromFrame, toFrame);
    const pendingBusy = S.pending.size > 0;
    const dragging = S.drag && S.drag.moved && (S.drag.mode === "move" || S.drag.mode === "start"
      || S.drag.mode === "end") ? S.drag.row.id : undefined;
    S.tracks.forEach((track, t) => {
      const lt = L.tracks[t];
      drawTrackMois(track.mois, lt, fromFrame, toFrame, dragging, th);
      if (lt.suggestTop >= 0) {
        const sg = track.suggestions;
        const [slo, shi] = timelineWindow(sg, fromFrame, toFrame);
        for (let i = slo; i < shi; i++) {
          const row = sg.items[i];
          if (row.end_frame <= fromFrame) continue;
          drawSuggestion(row, lt.suggestTop + 1, TIMELINE_SUGGEST_PX - 3, pendingBusy && S.pending.has(
            `suggestion:${row.id}`), th);
        }
      }
    });
    // New MOIs in flight (and region changes), and the drag-to-create ghost.
    for (const [key, p] of S.pending) {
      if (!key.startsWith("moi:") || !p.row) continue;
      const old = ctx.labels.mois.get(p.row.id);
      if (old && old.region === p.row.region) continue;
      const t = trackIndexOf(p.row.region);
      if (t >= 0) drawMoi(p.row, L.tracks[t].laneTop + 1, TIMELINE_LANE_PX - 2, "pending", th);
    }
    const creating = S.drag && S.drag.mode === "create" && S.drag.moved ? S.drag : S.ghost;
    if (creating && creating.preview && L.tracks[creating.track]) {
      const lt = L.tracks[creating.track];
      drawMoi({ region: S.tracks[creating.track].region, label: "new MOI", ...creating.preview }, lt.laneTop + 1,
        lt.nLanes * TIMELINE_LANE_PX - 2, "ghost", th);
    }
    drawPlayhead(th);
    g.restore();
    drawGutterEdge(th, L.tracksTop, L.tracksBottom);

    use(2, th);
    drawOverview(th);
    // Written only when changed: the playhead redraws every frame, and a DOM write costs a layout.
    setText(rangeText, `${fmt(fromFrame)} – ${fmt(toFrame)}`);
    setText(markText, S.markIn !== null ? `IN ${fmt(S.markIn)} — mark out to finish` : "");
    return finish(t0, flush);
  }
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
  function clipArea(top, bottom) {
    g.beginPath();
    g.rect(TIMELINE_GUTTER_PX, top, S.widthPx - TIMELINE_GUTTER_PX, bottom - top);
    g.clip();
  }
  function drawGutterEdge(th, top, bottom) {
    g.strokeStyle = th.border;
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(TIMELINE_GUTTER_PX - 0.5, top);
    g.lineTo(TIMELINE_GUTTER_PX - 0.5, bottom);
    g.stroke();
  }
  /** Grid lines at the major ticks, the seizures and the mark-in line (they cross the top and the tracks). */
  function drawGridAndSeizures(th, fromFrame, toFrame) {
    const L = S.layout;
    const step = timelineTickStep(S.view.pxPerFrame, fps());
    g.strokeStyle = th.border;
    g.globalAlpha = 0.6;
    g.lineWidth = 1;
    g.beginPath();
    for (let f = Math.floor(fromFrame / step.majorFrames) * step.majorFrames; f <= toFrame; f += step.majorFrames) {
      const x = Math.round(xOf(f)) + 0.5;
      g.moveTo(x, L.seizureTop);
      g.lineTo(x, L.tracksBottom);
    }
    g.stroke();
    g.globalAlpha = 1;
    drawSeizures(th, fromFrame, toFrame, L.tracksTop, L.tracksBottom);
    if (S.markIn !== null) {
      g.strokeStyle = th.accent;
      g.setLineDash([3, 3]);
      g.beginPath();
      const x = Math.round(xOf(S.markIn)) + 0.5;
      g.moveTo(x, L.seizureTop);
      g.lineTo(x, L.tracksBottom);
      g.stroke();
      g.setLineDash([]);
    }
  }
  /** The playhead: the current frame's cell when it is wide enough, and a line at its start. */
  function drawPlayhead(th) {
    const L = S.layout;
    const px = xOf(ctx.state.frame);
    if (S.view.pxPerFrame >= 4) {
      g.fillStyle = th.playhead;
      g.globalAlpha = 0.12;
      g.fillRect(px, L.seizureTop, S.view.pxPerFrame, L.tracksBottom - L.seizureTop);
      g.globalAlpha = 1;
    }
    g.fillStyle = th.playhead;
    g.fillRect(Math.round(px) - 0.5, 0, 1.5, L.tracksBottom);
    g.beginPath();
    g.moveTo(px - 5, 0);
    g.lineTo(px + 5.5, 0);
    g.lineTo(px + 0.25, 7);
    g.fill();
  }
  function finish(t0, flush) {
    if (flush) for (const c of contexts) c.getImageData(0, 0, 1, 1);
    const ms = performance.now() - t0;
    stats.lastRedrawMs = ms;
    stats.redraws += 1;
    return ms;
  }

  // --- hit testing --------------------------------------------------------------------------
  function focusedTrack() {
    const sel = ctx.state.selection;
    if (sel && sel.kind === "moi" && ctx.labels.mois.has(sel.id)) {
      const t = trackIndexOf(ctx.labels.mois.get(sel.id).region);
      if (t >= 0) return t;
    }
    if (S.hoverTrack >= 0) return S.hoverTrack;
    return Math.min(S.focusTrack, Math.max(0, S.tracks.length - 1));
  }

  /** What is under (x, y): {kind: "button"|"moi"|"suggestion"|"seizure"|"track"|"ruler"|"overview"|"none", ...}. */
  function hitTest(x, y) {
    const L = S.layout;
    for (const b of S.buttons) {
      if (x >= b.x && x <= b.x + b.w && y >= b.y && y <= b.y + b.h) {
        return { kind: "button", action: b.action, row: b.row };
      }
    }
    if (y >= L.overviewTop && y < L.overviewTop + TIMELINE_OVERVIEW_PX) {
      return x >= TIMELINE_GUTTER_PX ? { kind: "overview" } : { kind: "none" };
    }
    if (y < TIMELINE_RULER_PX) return x >= TIMELINE_GUTTER_PX ? { kind: "ruler" } : { kind: "none" };
    if (x < TIMELINE_GUTTER_PX) {
      const t = timelineTrackAt(L, y);
      return t >= 0 ? { kind: "header", track: t } : { kind: "none" };
    }
    const frame = frameAt(x);
    const tol = TIMELINE_EDGE_PX / S.view.pxPerFrame;
    if (y >= L.seizureTop && y < L.tracksTop) {
      let best = null;
      for (const s of seizures()) {
        const end = s.offset_frame == null ? nFrames() : s.offset_frame;
        const dOn = Math.abs(xOf(s.onset_frame) - x);
        const dOff = s.offset_frame == null ? Infinity : Math.abs(xOf(end) - x);
        if (Math.min(dOn, dOff) <= TIMELINE_EDGE_PX) {
          best = { kind: "seizure", row: s, edge: dOn <= dOff ? "onset" : "offset" };
        } else if (!best && frame >= s.onset_frame && frame < end) best = { kind: "seizure", row: s, edge: null };
      }
      return best || { kind: "seizurelane" };
    }
    const t = timelineTrackAt(L, y);
    if (t < 0) return { kind: "none" };
    const lt = L.tracks[t];
    const track = S.tracks[t];
    if (lt.suggestTop >= 0 && y >= lt.suggestTop && y < lt.suggestTop + TIMELINE_SUGGEST_PX) {
      const [lo, hi] = timelineWindow(track.suggestions, frame - tol, frame + tol);
      let hit = null;
      for (let i = lo; i < hi; i++) {
        const row = track.suggestions.items[i];
        if (row.start_frame - tol <= frame && frame < row.end_frame + tol) hit = row;
      }
      return hit ? { kind: "suggestion", row: hit, track: t } : { kind: "track", track: t, frame };
    }
    const lane = Math.min(lt.nLanes - 1, Math.max(0, Math.floor((y - lt.laneTop) / TIMELINE_LANE_PX)));
    const group = track.mois;
    const [lo, hi] = timelineWindow(group, frame - tol, frame + tol);
    let hit = null;
    for (let i = lo; i < hi; i++) {
      const row = group.items[i];
      if (group.lanes[i] !== lane) continue;
      const x0 = xOf(row.start_frame);
      const x1 = xOf(row.end_frame);
      if (x < x0 - 3 || x > x1 + 3) continue;
      const edgeTol = Math.min(TIMELINE_EDGE_PX, Math.max(3, (x1 - x0) / 3));
      let edge = null;
      if (Math.abs(x - x0) <= edgeTol && x <= (x0 + x1) / 2) edge = "start";
      else if (Math.abs(x - x1) <= edgeTol) edge = "end";
      if (x < x0 && !edge) continue;
      if (x > x1 && !edge) continue;
      hit = { kind: "moi", row, edge, track: t };
    }
    return hit || { kind: "track", track: t, frame };
  }

  const CURSORS = { button: "pointer", ruler: "text", overview: "grab", header: "default", track: "crosshair",
    suggestion: "pointer", seizurelane: "default", none: "default" };
  function cursorFor(hit) {
    if (hit.kind === "moi") {
      if (S.pending.has(`moi:${hit.row.id}`)) return "progress";
      return hit.edge ? "ew-resize" : "grab";
    }
    if (hit.kind === "seizure") return hit.edge ? "col-resize" : "pointer";
    return CURSORS[hit.kind] || "default";
  }

  // --- tooltip ------------------------------------------------------------------------------
  function tooltipText(hit) {
    const row = hit.row;
    const span = (a, b) => `${fmt(a)} – ${b == null ? "…" : fmt(b)}`;
    if (hit.kind === "moi") {
      const p = S.pending.get(`moi:${row.id}`);
      const state = p ? [p.queued ? "not saved yet: kept until the database is back" : "saving…"] : [];
      return [`${row.label}${row.laterality ? ` · ${row.laterality}` : ""}`, row.region, ...state,
        `${span(row.start_frame, row.end_frame)} (${row.end_frame - row.start_frame} frames)`,
        `by ${row.author || "?"}${row.source && row.source !== "human" ? ` (${row.source})` : ""}`
        + `${row.confidence != null ? ` · confidence ${row.confidence}` : ""}`];
    }
    if (hit.kind === "suggestion") {
      return [`Suggestion: ${row.label}${row.laterality ? ` · ${row.laterality}` : ""}`, row.region,
        span(row.start_frame, row.end_frame),
        `score ${row.score != null ? Number(row.score).toFixed(2) : "?"} · model ${row.model_version || "?"}`,
        "accept ✓ / reject ✕ (buttons or keys)"];
    }
    if (hit.kind === "seizure") {
      return [`Seizure${row.seizure_type ? `: ${row.seizure_type}` : ""}`, span(row.onset_frame, row.offset_frame),
        [row.awareness, row.lateralization, row.localization].filter(Boolean).join(" · "),
        `by ${row.author || "?"}`, "drag the edges to adjust onset / offset"].filter(Boolean);
    }
    if (hit.kind === "button") return [hit.action === "accept" ? "Accept this suggestion" : "Reject this suggestion"];
    return null;
  }
  /** The tooltip of `hit` near the pointer (viewport coordinates), after a short rest. */
  function showTip(hit, clientX, clientY) {
    clearTimeout(S.tipTimer);
    const lines = S.drag ? null : tooltipText(hit);
    if (!lines) {
      tip.classList.remove("de-timeline-tip--on");
      return;
    }
    S.tipTimer = setTimeout(() => {
      tip.replaceChildren(...lines.map((line, i) => timelineNode("div", i ? "" : "de-timeline-tip-title", {}, line)));
      tip.classList.add("de-timeline-tip--on");
      const r = el.getBoundingClientRect();
      const x = clientX - r.left;
      const y = clientY - r.top;
      const left = Math.min(x + 14, r.width - tip.offsetWidth - 4);
      const top = y + 18 + tip.offsetHeight > r.height ? y - tip.offsetHeight - 8 : y + 18;
      tip.style.left = `${Math.max(0, left)}px`;
      tip.style.top = `${top}px`;
    }, 250);
  }
  function hideTip() {
    clearTimeout(S.tipTimer);
    tip.classList.remove("de-timeline-tip--on");
    S.tipKind = null; // the next pointer move shows a fresh one
  }
  /** The labels changed: a tooltip (or hover) may describe a row that is gone or changed. */
  function forgetHover() {
    hideTip();
    if (S.hover) {
      S.hover = null;
      scheduleDraw();
    }
  }

  // --- edits --------------------------------------------------------------------------------
  /**
   * Send an edit with previews in S.pending (key -> {row} or {row: null} for a removal), drawn
   * dashed until the reply. An edit the kernel keeps while the database is unreachable (error
   * kind "offline", queued) keeps its preview until its row arrives (settleQueued).
   */
  function edit(op, args, previews, what) {
    for (const [key, value] of previews) S.pending.set(key, value);
    scheduleDraw();
    const done = () => {
      for (const [key, value] of previews) if (S.pending.get(key) === value) S.pending.delete(key);
      scheduleDraw();
    };
    return ctx.request({ type: "edit", op, args }).then((reply) => {
      const content = (reply && reply.content) || {};
      if (!content.ok && content.error && content.error.kind === "offline" && content.error.queued) {
        for (const [, value] of previews) Object.assign(value, { queued: S.nextTemp++, op, args });
        settleQueued();
        return null;
      }
      done();
      return content.ok ? content : null; // main.js has shown the error (or the conflict dialog)
    }, (err) => {
      done();
      ctx.notify("error", `Could not ${what}: ${(err && err.message) || err}`);
      return null;
    });
  }
  /** Drop the previews of kept (offline) edits whose result is now in ctx.labels. */
  function settleQueued(status) {
    const queued = [...S.pending].filter(([, p]) => p.queued).sort((a, b) => a[1].queued - b[1].queued);
    if (!queued.length) return;
    const table = (key) => ({ moi: ctx.labels.mois, suggestion: ctx.labels.suggestions,
      seizure: ctx.labels.seizures })[key.split(":")[0]];
    const landed = ([key, p]) => {
      const map = table(key);
      const id = key.split(":")[1];
      if (id.startsWith("new")) { // an addition: a row like it has arrived
        const a = p.args;
        return [...map.values()].some((r) => (p.op === "add_seizure" ? r.onset_frame === a.onset_frame
          : r.region === a.region && r.label === a.label && r.start_frame === a.start_frame
            && r.end_frame === a.end_frame));
      }
      const now = map.get(Number(id)) || map.get(id);
      if (!p.row) return !now; // a removal
      return !now || (p.row.version !== undefined && now.version > p.row.version)
        || (p.op.endsWith("_suggestion") && now.decision !== "pending");
    };
    let left = queued.filter((entry) => !landed(entry));
    if (status && status.state !== "offline" && !status.pending) left = []; // nothing is kept any more
    else if (status && status.pending !== undefined && left.length > status.pending) {
      left = left.slice(0, status.pending); // an undo took back the newest kept edits
    }
    for (const [key] of queued) if (!left.some(([k]) => k === key)) S.pending.delete(key);
    scheduleDraw();
  }

  /** Where the chooser opens: at `frame`, below the track, or above it when the app has more room there. */
  function chooserPosition(frame, track) {
    const lt = S.layout.tracks[track] || { top: S.layout.tracksTop, bottom: S.layout.tracksTop };
    clientXY(frame, (lt.top + lt.bottom) / 2); // scrolls the track into view
    const elRect = el.getBoundingClientRect();
    const tracksRect = canvas.getBoundingClientRect();
    const trackTop = tracksRect.top + lt.top - S.layout.tracksTop;
    const trackBottom = tracksRect.top + lt.bottom - S.layout.tracksTop;
    const frameRect = (el.closest(".de-app") || document.documentElement).getBoundingClientRect();
    const below = Math.min(frameRect.bottom, window.innerHeight) - trackBottom;
    const above = trackTop - Math.max(frameRect.top, 0);
    const left = Math.min(Math.max(xOf(frame), TIMELINE_GUTTER_PX), S.widthPx - 40) + (tracksRect.left - elRect.left);
    if (below < 330 && above > below) return { left, bottom: elRect.bottom - trackTop + 2 };
    return { left, top: trackBottom - elRect.top + 2 };
  }
  function openChooser(opts) {
    if (S.chooser) S.chooser.close();
    hideTip();
    S.chooser = timelineOpenChooser(el, { vocabulary: vocabulary(), ...opts,
      onDone: (choice) => {
        S.chooser = null;
        canvas.focus({ preventScroll: true });
        opts.onDone(choice);
      },
      onCancel: () => {
        S.chooser = null;
        canvas.focus({ preventScroll: true });
        if (opts.onCancel) opts.onCancel();
        scheduleDraw();
      } });
  }
  function createMoi(startFrame, endFrame, track) {
    const region = (S.tracks[track] || S.tracks[0] || {}).region;
    S.focusTrack = Math.max(0, track);
    S.ghost = { track: Math.max(0, track), preview: { start_frame: startFrame, end_frame: endFrame } };
    openChooser({ title: "New MOI", okText: "Add", region, detail: `${fmt(startFrame)} – ${fmt(endFrame)}`,
      ...chooserPosition(startFrame, track),
      onCancel: () => {
        S.markIn = null;
        S.ghost = null;
      },
      onDone: ({ region: r, label, laterality }) => {
        S.markIn = null;
        S.ghost = null;
        const args = { region: r, label, laterality, start_frame: startFrame, end_frame: endFrame };
        const key = `moi:new${S.nextTemp++}`;
        edit("add_moi", args, [[key, { row: { id: key, ...args, author: ctx.model.get("user")?.username } }]],
          "add the MOI").then((content) => {
          const added = content && content.changes && (content.changes.mois || []).find((m) => m.region === r
            && m.label === label && m.start_frame === startFrame && m.end_frame === endFrame);
          if (added) select({ kind: "moi", id: added.id });
        });
      } });
  }
  function relabel(row) {
    if (S.pending.has(`moi:${row.id}`)) return;
    const t = trackIndexOf(row.region);
    openChooser({ title: "Relabel MOI", okText: "Save", region: row.region, label: row.label,
      laterality: row.laterality ?? null,
      detail: `${fmt(row.start_frame)} – ${fmt(row.end_frame)}`, ...chooserPosition(row.start_frame, t),
      onDone: (choice) => {
        const changes = {};
        for (const k of ["region", "label", "laterality"]) if ((row[k] ?? null) !== choice[k]) changes[k] = choice[k];
        if (!Object.keys(changes).length) return;
        edit("update_moi", { id: row.id, version: row.version, changes },
          [[`moi:${row.id}`, { row: { ...row, ...changes } }]], "relabel the MOI");
      } });
  }
  function updateMoi(row, changes) {
    return edit("update_moi", { id: row.id, version: row.version, changes },
      [[`moi:${row.id}`, { row: { ...row, ...changes } }]], "change the MOI");
  }
  function decide(row, accept) {
    if (S.pending.has(`suggestion:${row.id}`)) return;
    edit(accept ? "accept_suggestion" : "reject_suggestion", { id: row.id, version: row.version },
      [[`suggestion:${row.id}`, { row }]], accept ? "accept the suggestion" : "reject the suggestion")
      .then((content) => {
        if (!content || !accept) return;
        const made = (content.changes && content.changes.mois || []).find((m) => m.region === row.region
          && m.start_frame === row.start_frame && m.end_frame === row.end_frame);
        if (made) select({ kind: "moi", id: made.id });
      });
  }
  function updateSeizure(row, changes) {
    return edit("update_seizure", { id: row.id, version: row.version, changes },
      [[`seizure:${row.id}`, { row: { ...row, ...changes } }]], "change the seizure");
  }

  // --- pointer ------------------------------------------------------------------------------
  /** The pointer in timeline px (x from the left edge, y from the top of the ruler). */
  function localXY(event) {
    const c = canvases.includes(event.currentTarget) ? event.currentTarget : canvas;
    const r = c.getBoundingClientRect();
    const offset = c === topCanvas ? 0 : c === canvas ? S.layout.tracksTop : S.layout.tracksBottom;
    return [event.clientX - r.left, event.clientY - r.top + offset];
  }
  /** Frames an edge snaps to: seizure onsets/offsets, the mark-in, the other bars' edges in `track`. */
  function snapTargets(track, excludeId) {
    const out = [];
    for (const s of ctx.labels.seizures.values()) {
      out.push(s.onset_frame);
      if (s.offset_frame != null) out.push(s.offset_frame);
    }
    if (S.markIn !== null) out.push(S.markIn);
    const group = track >= 0 && S.tracks[track] ? S.tracks[track].mois : null;
    if (group) {
      const [lo, hi] = timelineWindow(group, S.view.startFrame, S.view.startFrame + visibleFrames());
      for (let i = lo; i < Math.min(hi, lo + 400); i++) {
        if (group.items[i].id === excludeId) continue;
        out.push(group.items[i].start_frame, group.items[i].end_frame);
      }
    }
    return out;
  }
  /**
   * `frame` snapped (unless Alt is held) to a nearby target or to the playhead: a start edge to the
   * playhead's frame, an end edge (exclusive) just after it, so the frame on screen is inside.
   */
  function snapEdge(frame, event, targets, isEnd) {
    if (event.altKey) return frame;
    const playhead = ctx.state.frame + (isEnd ? 1 : 0);
    return timelineSnap(frame, [playhead, ...targets], TIMELINE_SNAP_PX / S.view.pxPerFrame);
  }
  function updateDrag(event, x, y) {
    const d = S.drag;
    if (!d.moved && Math.abs(x - d.x0) < TIMELINE_DRAG_PX && Math.abs(y - d.y0) < TIMELINE_DRAG_PX) return;
    d.moved = true;
    hideTip();
    const n = nFrames();
    if (d.mode === "seek") seek(frameAt(x));
    else if (d.mode === "overview") {
      const scale = areaWidth() / n;
      setView({ ...S.view, startFrame: (x - TIMELINE_GUTTER_PX) / scale - d.grab });
    } else if (d.mode === "pan") {
      setView({ ...S.view, startFrame: d.startView - (x - d.x0) / S.view.pxPerFrame });
    } else if (d.mode === "create") {
      const raw = Math.round(frameAt(x));
      const f = Math.min(Math.max(snapEdge(raw, event, d.targets, raw > d.anchor), 0), n);
      const a = Math.min(d.anchor, f);
      const b = Math.max(d.anchor, f);
      d.preview = { start_frame: a, end_frame: Math.max(b, a + 1) };
    } else if (d.mode === "move" || d.mode === "start" || d.mode === "end") {
      const row = d.row;
      let delta = Math.round(frameAt(x) - d.frame0);
      if (!event.altKey) {
        const edges = d.mode === "move" ? [[row.start_frame, false], [row.end_frame, true]]
          : [d.mode === "start" ? [row.start_frame, false] : [row.end_frame, true]];
        let best = null;
        for (const [e, isEnd] of edges) {
          const snapped = snapEdge(e + delta, event, d.targets, isEnd);
          if (snapped !== e + delta && (best === null || Math.abs(snapped - e - delta) < Math.abs(best))) {
            best = snapped - e - delta;
          }
        }
        if (best !== null) delta += best;
      }
      d.preview = timelineDragResult(d.mode, row.start_frame, row.end_frame, delta, n);
    } else if (d.mode === "seizure-onset" || d.mode === "seizure-offset") {
      const row = d.row;
      const f = snapEdge(Math.round(frameAt(x)), event, d.targets, d.mode === "seizure-offset");
      d.preview = d.mode === "seizure-onset"
        ? { onset_frame: Math.min(Math.max(f, 0), row.offset_frame == null ? n - 1 : row.offset_frame - 1) }
        : { offset_frame: Math.min(Math.max(f, row.onset_frame + 1), n) };
    }
    scheduleDraw();
  }
  function onPointerDown(event) {
    if (event.button !== 0 && event.button !== 1) return;
    hideTip();
    const [x, y] = localXY(event);
    canvas.focus({ preventScroll: true });
    const hit = hitTest(x, y);
    const base = { x0: x, y0: y, moved: false, pointerId: event.pointerId };
    if (event.button === 1 || (event.button === 0 && event.shiftKey && hit.kind !== "ruler")) {
      S.drag = { ...base, mode: "pan", startView: S.view.startFrame };
    } else if (hit.kind === "button") {
      decide(hit.row, hit.action === "accept");
      return;
    } else if (hit.kind === "ruler") {
      S.drag = { ...base, mode: "seek", moved: true };
      seek(frameAt(x));
    } else if (hit.kind === "overview") {
      const scale = areaWidth() / nFrames();
      const at = (x - TIMELINE_GUTTER_PX) / scale;
      const inside = at >= S.view.startFrame && at <= S.view.startFrame + visibleFrames();
      const grab = inside ? at - S.view.startFrame : visibleFrames() / 2;
      S.drag = { ...base, mode: "overview", grab, moved: true };
      if (!inside) setView({ ...S.view, startFrame: at - grab });
    } else if (hit.kind === "moi") {
      S.focusTrack = hit.track;
      select({ kind: "moi", id: hit.row.id });
      if (S.pending.has(`moi:${hit.row.id}`)) return;
      S.drag = { ...base, mode: hit.edge || "move", row: hit.row, frame0: frameAt(x),
        targets: snapTargets(hit.track, hit.row.id), preview: null };
    } else if (hit.kind === "suggestion") {
      S.focusTrack = hit.track;
      select({ kind: "suggestion", id: hit.row.id });
      return;
    } else if (hit.kind === "seizure") {
      select({ kind: "seizure", id: hit.row.id });
      if (hit.edge && !S.pending.has(`seizure:${hit.row.id}`)) {
        S.drag = { ...base, mode: `seizure-${hit.edge}`, row: hit.row, targets: snapTargets(-1), preview: null };
      } else return;
    } else if (hit.kind === "track") {
      S.focusTrack = hit.track;
      const targets = snapTargets(hit.track, undefined);
      const anchor = snapEdge(Math.round(frameAt(x)), event, targets, false);
      S.drag = { ...base, mode: "create", track: hit.track, anchor, targets, preview: null, frame: hit.frame };
    } else if (hit.kind === "header") {
      S.focusTrack = hit.track;
      scheduleDraw();
      return;
    } else return;
    event.currentTarget.setPointerCapture(event.pointerId);
    event.preventDefault();
  }
  function autoPan() {
    // While an edit drag goes past the left or right end of the track area, scroll (and keep dragging).
    S.pan = 0;
    const d = S.drag;
    const p = S.lastPointer;
    if (!d || !d.moved || !p || !["create", "move", "start", "end", "seizure-onset", "seizure-offset", "seek"]
      .includes(d.mode)) return;
    let speed = 0;
    if (p.x > S.widthPx - 4) speed = Math.min(1, (p.x - (S.widthPx - 4)) / 40 + 0.15);
    else if (p.x < TIMELINE_GUTTER_PX) speed = -Math.min(1, (TIMELINE_GUTTER_PX - p.x) / 40 + 0.15);
    if (!speed) return;
    setView({ ...S.view, startFrame: S.view.startFrame + speed * 14 / S.view.pxPerFrame });
    updateDrag(p.event, p.x, p.y);
    S.pan = requestAnimationFrame(autoPan);
  }
  function onPointerMove(event) {
    const [x, y] = localXY(event);
    if (S.drag) {
      S.lastPointer = { x, y, event };
      updateDrag(event, x, y);
      if (!S.pan) S.pan = requestAnimationFrame(autoPan);
      return;
    }
    const hit = hitTest(x, y);
    event.currentTarget.style.cursor = cursorFor(hit);
    const track = hit.track !== undefined ? hit.track : -1;
    // Over a suggestion's accept/reject button the suggestion stays hovered (its buttons stay drawn).
    const hovered = hit.kind === "button" ? { kind: "suggestion", row: hit.row } : hit.row ? hit : null;
    const prev = S.hover;
    const same = prev && hovered && prev.kind === hovered.kind && prev.row.id === hovered.row.id;
    if (!same) {
      S.hover = hovered;
      scheduleDraw();
    }
    if (!same || hit.kind !== S.tipKind) {
      S.tipKind = hit.kind;
      showTip(hit, event.clientX, event.clientY);
    }
    if (track !== S.hoverTrack && hit.kind !== "button") {
      S.hoverTrack = track;
      scheduleDraw();
    }
  }
  function onPointerLeave() {
    if (S.drag) return;
    S.hover = null;
    S.hoverTrack = -1;
    hideTip();
    scheduleDraw();
  }
  function onPointerUp(event) {
    const d = S.drag;
    if (!d) return;
    S.drag = null;
    if (S.pan) cancelAnimationFrame(S.pan);
    S.pan = 0;
    const target = event.currentTarget;
    if (target.hasPointerCapture && target.hasPointerCapture(event.pointerId)) {
      target.releasePointerCapture(event.pointerId);
    }
    if (d.mode === "create") {
      if (d.moved && d.preview) createMoi(d.preview.start_frame, d.preview.end_frame, d.track);
      else {
        select(null);
        seek(d.frame);
      }
    } else if ((d.mode === "move" || d.mode === "start" || d.mode === "end") && d.moved && d.preview) {
      const row = d.row;
      const changes = {};
      if (d.preview.start_frame !== row.start_frame) changes.start_frame = d.preview.start_frame;
      if (d.preview.end_frame !== row.end_frame) changes.end_frame = d.preview.end_frame;
      if (Object.keys(changes).length) updateMoi(row, changes);
    } else if (d.mode.startsWith("seizure-") && d.moved && d.preview) {
      const key = Object.keys(d.preview)[0];
      if (d.preview[key] !== d.row[key]) updateSeizure(d.row, d.preview);
    }
    scheduleDraw();
  }
  function onDoubleClick(event) {
    const [x, y] = localXY(event);
    const hit = hitTest(x, y);
    if (hit.kind === "moi") relabel(hit.row);
  }
  function onWheel(event) {
    if (!rec()) return;
    const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? S.widthPx : 1;
    const [x] = localXY(event);
    if (!(event.ctrlKey || event.metaKey) && !event.shiftKey && x < TIMELINE_GUTTER_PX
      && stage.scrollHeight > stage.clientHeight) return; // over the track names: scroll the tracks up/down
    event.preventDefault();
    if (event.ctrlKey || event.metaKey) {
      const anchorPx = Math.max(0, x - TIMELINE_GUTTER_PX);
      const factor = Math.exp(-event.deltaY * unit * 0.002);
      S.view = timelineZoomAt(S.view, factor, frameAt(TIMELINE_GUTTER_PX + anchorPx), anchorPx, nFrames(), areaWidth());
      scheduleDraw();
      return;
    }
    const dx = event.shiftKey || Math.abs(event.deltaX) > Math.abs(event.deltaY) ? (event.deltaX || event.deltaY)
      : event.deltaY;
    setView({ ...S.view, startFrame: S.view.startFrame + dx * unit / S.view.pxPerFrame });
  }
  function onKeyDown(event) {
    if (event.key === "Escape" && (S.drag || S.markIn !== null)) {
      S.drag = null;
      S.markIn = null;
      scheduleDraw();
      event.stopPropagation();
      event.preventDefault();
    }
  }

  // --- actions ------------------------------------------------------------------------------
  function selectedRow(kind) {
    const sel = ctx.state.selection;
    if (!sel || sel.kind !== kind) return null;
    const map = { moi: ctx.labels.mois, suggestion: ctx.labels.suggestions, seizure: ctx.labels.seizures }[kind];
    return map ? map.get(sel.id) || null : null; // other kinds (a keypoint, 15_joints.js) are not on the timeline
  }
  function zoomBy(factor) {
    const f = ctx.state.frame;
    const inView = f >= S.view.startFrame && f <= S.view.startFrame + visibleFrames();
    const anchorFrame = inView ? f : S.view.startFrame + visibleFrames() / 2;
    const anchorPx = (anchorFrame - S.view.startFrame) * S.view.pxPerFrame;
    S.view = timelineZoomAt(S.view, factor, anchorFrame, anchorPx, nFrames(), areaWidth());
    scheduleDraw();
  }
  function jump(direction) {
    // The next (previous) MOI start after (before) the playhead, over all tracks.
    const f = ctx.state.frame;
    let best = null;
    for (const track of S.tracks) {
      const g2 = track.mois;
      if (!g2.items.length) continue;
      const i = direction > 0 ? timelineBisect(g2.starts, f, true) : timelineBisect(g2.starts, f) - 1;
      const row = g2.items[i];
      if (row && (!best || (direction > 0 ? row.start_frame < best.start_frame : row.start_frame > best.start_frame))) {
        best = row;
      }
    }
    if (!best) return;
    select({ kind: "moi", id: best.id });
    seek(best.start_frame);
    const lt = S.layout.tracks[trackIndexOf(best.region)];
    if (lt) clientXY(best.start_frame, (lt.top + lt.bottom) / 2); // scroll its track into view
  }
  function markOnset() {
    const f = ctx.state.frame;
    const s = currentSeizure(f, false);
    if (!s) {
      const row = { onset_frame: f, offset_frame: null };
      const key = `seizure:new${S.nextTemp++}`;
      return edit("add_seizure", row, [[key, { row: { id: "new", ...row } }]], "add the seizure").then((c) => {
        const made = c && c.changes && (c.changes.seizures || []).find((z) => z.onset_frame === f);
        if (made) select({ kind: "seizure", id: made.id });
      });
    }
    if (s.offset_frame != null && f >= s.offset_frame) {
      ctx.notify("warning", `The onset must come before the offset (${fmt(s.offset_frame)}).`);
      return null;
    }
    return updateSeizure(s, { onset_frame: f });
  }
  function markOffset() {
    const f = ctx.state.frame;
    const s = currentSeizure(f, true);
    if (!s) {
      ctx.notify("warning", "Mark the seizure onset first (no seizure starts before the playhead).");
      return null;
    }
    if (f + 1 <= s.onset_frame) {
      ctx.notify("warning", `The offset must come after the onset (${fmt(s.onset_frame)}).`);
      return null;
    }
    return updateSeizure(s, { offset_frame: f + 1 });
  }
  const actions = {
    mark_in: () => {
      S.markIn = ctx.state.frame;
      scheduleDraw();
    },
    mark_out: () => {
      if (S.markIn === null) {
        ctx.notify("info", "Press mark in first: mark in at the start of the movement, mark out at its end.");
        return;
      }
      const f = ctx.state.frame;
      createMoi(Math.min(S.markIn, f), Math.max(S.markIn, f) + 1, focusedTrack());
    },
    relabel: () => {
      const row = selectedRow("moi");
      if (row) relabel(row);
      else ctx.notify("info", "Select an MOI to relabel (click it).");
    },
    delete_selected: () => {
      const sel = ctx.state.selection;
      if (!sel) return;
      if (sel.kind === "moi") {
        const row = selectedRow("moi");
        if (!row || S.pending.has(`moi:${row.id}`)) return;
        edit("delete_moi", { id: row.id, version: row.version }, [[`moi:${row.id}`, { row: null }]], "delete the MOI");
      } else if (sel.kind === "suggestion") {
        const row = selectedRow("suggestion");
        if (row) decide(row, false);
      } else if (sel.kind === "seizure") {
        const row = selectedRow("seizure");
        if (row) edit("delete_seizure", { id: row.id, version: row.version }, [[`seizure:${row.id}`, { row: null }]],
          "delete the seizure");
      }
    },
    next_moi: () => jump(1),
    prev_moi: () => jump(-1),
    mark_onset: markOnset,
    mark_offset: markOffset,
    accept_suggestion: () => {
      const row = selectedRow("suggestion");
      if (row) decide(row, true);
      else ctx.notify("info", "Select a suggestion first (click a hatched bar).");
    },
    reject_suggestion: () => {
      const row = selectedRow("suggestion");
      if (row) decide(row, false);
      else ctx.notify("info", "Select a suggestion first (click a hatched bar).");
    },
    zoom_in: () => zoomBy(1.6),
    zoom_out: () => zoomBy(1 / 1.6),
    zoom_fit: () => setView({ startFrame: 0, pxPerFrame: 0 }),
    zoom_selection: () => {
      const kind = ctx.state.selection && ctx.state.selection.kind;
      const row = kind ? selectedRow(kind) : null;
      let range = null;
      if (row && kind === "seizure") range = [row.onset_frame, row.offset_frame == null ? nFrames() : row.offset_frame];
      else if (row) range = [row.start_frame, row.end_frame];
      else if (ctx.state.loop) range = ctx.state.loop;
      else if (S.markIn !== null) {
        range = [Math.min(S.markIn, ctx.state.frame), Math.max(S.markIn, ctx.state.frame) + 1];
      }
      if (range) setView(timelineViewFor(range[0], range[1], nFrames(), areaWidth()));
    },
  };
  Object.assign(ctx.actions, actions);

  // --- wiring -------------------------------------------------------------------------------
  function onFrame({ frame, source }) {
    const vis = visibleFrames();
    const start = S.view.startFrame;
    if (source !== "timeline" && S.fitted) {
      if (ctx.state.playing) {
        if (frame < start || frame >= start + vis * 0.92) S.view = timelineClampView({ ...S.view,
          startFrame: frame - vis * 0.08 }, nFrames(), areaWidth());
      } else if (frame < start || frame >= start + vis) {
        S.view = timelineClampView({ ...S.view, startFrame: frame - vis / 2 }, nFrames(), areaWidth());
      }
    }
    scheduleDraw();
  }
  const offs = [
    ctx.bus.on("frame", onFrame),
    ctx.bus.on("labels", () => {
      forgetHover();
      rebuild();
      settleQueued();
    }),
    ctx.bus.on("status", ({ status } = {}) => settleQueued(status || {})),
    ctx.bus.on("vocabulary", rebuild),
    ctx.bus.on("select", ({ selection } = {}) => {
      // Tell screen readers what is selected (the canvas itself is an image to them).
      const kind = selection && selection.kind;
      const row = kind ? selectedRow(kind) : null;
      const hit = row ? { kind, row } : null;
      const lines = hit ? tooltipText(hit) : null;
      announce.textContent = lines ? `Selected: ${lines.slice(0, 3).join(", ")}` : "";
      scheduleDraw();
    }),
    ctx.bus.on("loop", scheduleDraw),
    ctx.bus.on("play", scheduleDraw),
    ctx.bus.on("resize", resize),
    ctx.bus.on("escape", (payload) => {
      // The shell's escape action (focus outside the timeline): drop a mark-in or a drag first.
      if (S.markIn === null && !S.drag) return;
      S.markIn = null;
      S.drag = null;
      if (payload) payload.handled = true;
      scheduleDraw();
    }),
    ctx.bus.on("recording", () => {
      S.fitted = false;
      S.markIn = null;
      S.pending.clear();
      rebuild();
    }),
  ];
  for (const c of canvases) {
    c.addEventListener("pointerdown", onPointerDown);
    c.addEventListener("pointermove", onPointerMove);
    c.addEventListener("pointerup", onPointerUp);
    c.addEventListener("pointercancel", onPointerUp);
    c.addEventListener("pointerleave", onPointerLeave);
    c.addEventListener("dblclick", onDoubleClick);
    c.addEventListener("wheel", onWheel, { passive: false });
  }
  el.addEventListener("keydown", onKeyDown);
  el.addEventListener("mouseleave", hideTip);
  const observer = typeof ResizeObserver === "function" ? new ResizeObserver(() => resize()) : null;
  if (observer) observer.observe(stage);
  const themeObserver = new MutationObserver(() => {
    S.theme = null;
    S.overviewKey = "";
    S.contrast.clear();
    scheduleDraw();
  });
  themeObserver.observe(document.body, { attributes: true,
    attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  rebuild();

  return {
    el,
    destroy() {
      S.destroyed = true;
      if (S.raf) cancelAnimationFrame(S.raf);
      if (S.pan) cancelAnimationFrame(S.pan);
      clearTimeout(S.tipTimer);
      if (S.chooser) S.chooser.close();
      for (const off of offs) off();
      if (observer) observer.disconnect();
      themeObserver.disconnect();
      for (const [name, fn] of Object.entries(actions)) if (ctx.actions[name] === fn) delete ctx.actions[name];
      if (window.__deepepil_timeline === stats) delete window.__deepepil_timeline;
      el.remove();
    },
  };
}
