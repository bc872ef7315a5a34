// 16_explain.js: a model suggestion's explanation (Grad-CAM over space and time) over the IR and depth views.
// createExplain(ctx, player) -> {el: null, destroy(), actions} (README "Extensions, explanations").
//
// The action `explain` (or the suggestion panel's Explanation button) turns explanation mode on or
// off. While it is on and the selected suggestion has an explanation (row.has_explanation), the
// kernel sends it once ({type: "explanation", suggestion_id}: the clip's source frames, its crop
// box in depth/IR pixels, one RGBA PNG per clip frame) and the views show, on each playhead frame
// inside the clip, the PNG of the latest clip frame at or before it, stretched over the box. The
// overlay lies under the joints and takes no pointer. Turning it on outside the clip seeks to the
// clip's first frame. A badge names the class, its score and the clip's frames (click: go there).
// Test hook: window.__deepepil_explain = {mode, shown: {suggestion_id, cam_index} | null, loaded}.

const EXPLAIN_STREAMS = ["ir", "depth"]; // the box is in depth-image pixels, which IR shares
const EXPLAIN_SVG = "http://www.w3.org/2000/svg";

/** Index of the clip frame shown at `frame` (latest at or before it), or -1 outside [frames[0], endFrame). */
function explainCamIndex(frames, endFrame, frame) {
  if (!frames || !frames.length || frame < frames[0] || frame >= endFrame) return -1;
  let lo = 0;
  let hi = frames.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (frames[mid] <= frame) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function createExplain(ctx, player) {
  const { bus, state } = ctx;
  const recording = state.recording || {};
  let mode = false;
  let current = null; // {suggestion_id, frames, end_frame, box_px, class_name, score, urls}
  let loadingId = null;
  let shown = null;
  let destroyed = false;
  const cache = new Map(); // suggestion id -> loaded explanation (its blob URLs live until destroy)

  const views = [];
  for (const info of recording.streams || []) {
    if (!EXPLAIN_STREAMS.includes(info.name) || !(info.width > 0 && info.height > 0)) continue;
    const figure = player && player.el ? player.el.querySelector(`.de-player-view[data-stream="${info.name}"]`) : null;
    if (!figure) continue;
    const svg = document.createElementNS(EXPLAIN_SVG, "svg");
    svg.setAttribute("class", "de-explain-overlay");
    svg.setAttribute("viewBox", `0 0 ${info.width} ${info.height}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    svg.dataset.stream = info.name;
    const image = document.createElementNS(EXPLAIN_SVG, "image");
    image.setAttribute("preserveAspectRatio", "none");
    svg.appendChild(image);
    svg.style.display = "none";
    const canvas = figure.querySelector("canvas");
    figure.insertBefore(svg, canvas ? canvas.nextSibling : figure.firstChild); // under the joints' overlay
    const badge = utilEl("button", "de-explain-badge");
    badge.type = "button";
    badge.title = "Where and when the model saw evidence for its suggestion (Grad-CAM): bright = strong. "
      + "Click to go to the explained clip.";
    badge.hidden = true;
    badge.addEventListener("mousedown", (event) => event.preventDefault()); // the app keeps the keyboard
    badge.addEventListener("click", () => current && ctx.seek(current.frames[0], "explain"));
    figure.appendChild(badge);
    views.push({ name: info.name, svg, image, badge });
  }

  function selectedSuggestion() {
    const sel = state.selection;
    return sel && sel.kind === "suggestion" ? ctx.labels.suggestions.get(sel.id) || null : null;
  }

  async function load(row) {
    if (cache.has(row.id)) return cache.get(row.id);
    loadingId = row.id;
    draw();
    try {
      const { content, buffers } = await ctx.request({ type: "explanation", suggestion_id: row.id });
      if (!content.ok) throw new Error((content.error && content.error.message) || "no explanation");
      const urls = (buffers || []).map((b) => URL.createObjectURL(new Blob([b], { type: content.mime || "image/png" })));
      const loaded = { ...content, urls };
      if (destroyed) {
        urls.forEach((u) => URL.revokeObjectURL(u));
        return null;
      }
      cache.set(row.id, loaded);
      return loaded;
    } finally {
      if (loadingId === row.id) loadingId = null;
    }
  }

  /** Follow the selection while in explanation mode: load the selected suggestion's explanation. */
  async function follow({ seekIntoClip = false } = {}) {
    const row = mode ? selectedSuggestion() : null;
    if (!row || !row.has_explanation) {
      current = null;
      draw();
      return;
    }
    if (current && current.suggestion_id === row.id) {
      draw();
      return;
    }
    let loaded;
    try {
      loaded = await load(row);
    } catch (err) {
      current = null;
      draw();
      ctx.notify("warning", `Explanation of this suggestion: ${err.message || err}`, { key: "explain" });
      return;
    }
    const still = selectedSuggestion();
    if (!loaded || !mode || !still || still.id !== row.id) return; // the user moved on meanwhile
    current = loaded;
    if (seekIntoClip && explainCamIndex(current.frames, current.end_frame, state.frame) < 0) {
      ctx.seek(current.frames[0], "explain");
    }
    draw();
  }

  let drawn = null; // what the views show now: draw() touches the DOM only when it changes (it runs every frame)
  let boxOf = null; // the explanation whose box the images are placed on

  function badgeText(row, k) {
    if (!row) return null;
    if (loadingId === row.id) return "Explanation: loading…";
    if (!row.has_explanation) return "Explanation: none for this suggestion";
    if (!current) return "Explanation: not available";
    const fps = recording.fps || 30;
    const where = `${utilFormatTime(current.frames[0], fps)}–${utilFormatTime(current.end_frame, fps)}`;
    return `Grad-CAM · ${current.class_name} ${Number(current.score).toFixed(2)} · ${where}` + (k >= 0 ? "" : " (go there)");
  }

  function draw() {
    const k = current ? explainCamIndex(current.frames, current.end_frame, state.frame) : -1;
    shown = k >= 0 ? { suggestion_id: current.suggestion_id, cam_index: k } : null;
    const badge = badgeText(mode ? selectedSuggestion() : null, k);
    const next = { current, k, badge, mode };
    if (drawn && Object.keys(next).every((key) => next[key] === drawn[key])) return;
    const placeBox = k >= 0 && boxOf !== current;
    if (placeBox) boxOf = current;
    drawn = next;
    for (const view of views) {
      if (k >= 0) {
        if (placeBox) {
          const [y0, y1, x0, x1] = current.box_px;
          view.image.setAttribute("x", String(x0));
          view.image.setAttribute("y", String(y0));
          view.image.setAttribute("width", String(x1 - x0));
          view.image.setAttribute("height", String(y1 - y0));
        }
        view.image.setAttribute("href", current.urls[k]);
      }
      view.svg.style.display = k >= 0 ? "" : "none";
      view.badge.hidden = badge === null;
      if (badge !== null) view.badge.textContent = badge;
    }
    if (player && player.el) player.el.classList.toggle("de-explain-active", mode);
  }

  function setMode(on) {
    mode = Boolean(on);
    ctx.explainMode = mode;
    if (!mode) current = null;
    bus.emit("explain", { mode });
    follow({ seekIntoClip: true });
  }

  const actions = {
    explain: () => {
      if (!mode && !selectedSuggestion()) {
        ctx.notify("info", "Select a suggestion on the timeline first: its explanation is shown over IR and depth.",
          { key: "explain" });
      }
      setMode(!mode);
    },
  };
  Object.assign(ctx.actions, actions);

  const offs = [
    bus.on("frame", draw),
    bus.on("select", () => follow({ seekIntoClip: true })),
    bus.on("labels", () => follow()),
  ];
  const hook = {
    get mode() { return mode; },
    get shown() { return shown; },
    get loaded() { return [...cache.keys()]; },
  };
  window.__deepepil_explain = hook;
  draw();

  function destroy() {
    if (destroyed) return;
    destroyed = true;
    for (const off of offs) off();
    for (const view of views) {
      view.svg.remove();
      view.badge.remove();
    }
    for (const loaded of cache.values()) loaded.urls.forEach((u) => URL.revokeObjectURL(u));
    cache.clear();
    if (player && player.el) player.el.classList.remove("de-explain-active");
    for (const [name, fn] of Object.entries(actions)) if (ctx.actions[name] === fn) delete ctx.actions[name];
    if (window.__deepepil_explain === hook) delete window.__deepepil_explain;
    ctx.explainMode = false;
  }

  return { el: null, destroy, actions, get mode() { return mode; } };
}
