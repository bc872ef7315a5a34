// 15_joints.js: 3D joints (skeleton keypoints) on the IR and depth views, and the joints panel.
// createJoints(ctx, player) -> {el: null, panel, destroy(), actions} (README "Extensions, joints").
//
// Joint mode (action joint_mode, or a joint's key) turns a click on the IR or depth view into
// "place the chosen joint on this frame": the click's depth-image pixel goes to the kernel (edit
// place_keypoint {frame_index, joint, u_px, v_px}), which lifts it to 3D on that frame's depth and
// stores it, or moves the joint's keyframe on this frame. A keyframe is a stored keypoint; between
// two keyframes of a joint its position is interpolated linearly (no extrapolation), as
// LabelingApp.joints_at does in 3D. Keyframes are drawn solid, interpolated positions hollow.
// A marker can be dragged (a keyframe moves: move_keypoint; an interpolated one becomes a keyframe
// on this frame), clicked (selects a keyframe: selection {kind: "keypoint", id}; delete_selected
// deletes it) and hovered (its name shows). The panel in the side bar lists the joints with their
// keyframes on a strip (click: go to the nearest); prev_keyframe / next_keyframe jump between them.
//
// Pixels: (u, v) = (column, row) of the depth image, pixel centres at integers. Each overlay is an
// SVG whose viewBox is the image ("0 0 W H"), letterboxed like the canvas (object-fit: contain), so
// a point at viewBox (X, Y) is u = X - 0.5, v = Y - 0.5, whatever the CSS size. The RGB view, when
// the recording has the calibration (recording.rgb_projection), shows the joints too, projected
// from 3D (keyframes' x_m, y_m, z_m, interpolated in 3D); it only shows them (a click there
// cannot be lifted: it is another camera).
// Test hook: window.__deepepil_joints = {mode, joint, clientXY(stream, u, v), positions(frame)}.

const JOINTS_STREAMS = ["ir", "depth"]; // views whose pixels are depth-image pixels (IR comes from the depth camera)
/** Keyboard actions picking a joint; a paired joint's key again picks the other side. */
const JOINTS_KEY_ACTIONS = {
  joint_head: ["head"],
  joint_neck: ["neck"],
  joint_shoulder: ["left_shoulder", "right_shoulder"],
  joint_elbow: ["left_elbow", "right_elbow"],
  joint_wrist: ["left_wrist", "right_wrist"],
  joint_hip: ["left_hip", "right_hip"],
  joint_knee: ["left_knee", "right_knee"],
  joint_ankle: ["left_ankle", "right_ankle"],
};
const JOINTS_COLORS = { left: "#38bdf8", right: "#fb923c", center: "#facc15" };
const JOINTS_MARKER_PX = 6; // marker radius on screen
const JOINTS_DRAG_PX = 3; // a press that moves farther is a drag, not a click
const JOINTS_SVG = "http://www.w3.org/2000/svg";

function jointsSide(joint) {
  return /^left_/.test(joint) ? "left" : /^right_/.test(joint) ? "right" : "center";
}

function jointsColor(joint) {
  return JOINTS_COLORS[jointsSide(joint)];
}

function jointsTitle(joint) {
  return String(joint || "").replace(/_/g, " ");
}

const JOINTS_VALUES = ["u_px", "v_px", "x_m", "y_m", "z_m"];

/**
 * The position of a joint on `frame` from its keyframes (rows sorted by frame_index):
 * {u_px, v_px, x_m, y_m, z_m, keyframe, row (the keyframe's row or null)}, or null outside its
 * first..last keyframe. A value missing on a keyframe (no 3D) is NaN there and in the spans it bounds.
 */
function jointsInterpolate(rows, frame) {
  if (!rows || !rows.length || frame < rows[0].frame_index || frame > rows[rows.length - 1].frame_index) return null;
  const num = (value) => (value === null || value === undefined ? NaN : Number(value));
  let i = 0;
  while (rows[i].frame_index < frame) i++;
  const after = rows[i];
  const out = { keyframe: after.frame_index === frame, row: after.frame_index === frame ? after : null };
  const before = out.keyframe ? after : rows[i - 1];
  const w = out.keyframe ? 0 : (frame - before.frame_index) / (after.frame_index - before.frame_index);
  for (const name of JOINTS_VALUES) out[name] = num(before[name]) + w * (num(after[name]) - num(before[name]));
  return out;
}

/** The RGB pixel (u, v) of a joint's 3D position through `projection` (README), or null. */
function jointsProjectRgb(projection, at) {
  if (!projection || !at || !Number.isFinite(at.z_m)) return null;
  const R = projection.rotation;
  const t = projection.translation_m;
  const p = [at.x_m, at.y_m, at.z_m];
  const q = [0, 1, 2].map((k) => R[k][0] * p[0] + R[k][1] * p[1] + R[k][2] * p[2] + t[k]);
  if (!(q[2] > 0)) return null;
  return { u_px: projection.cx + (projection.fx * q[0]) / q[2], v_px: projection.cy + (projection.fy * q[1]) / q[2] };
}

function jointsSvg(tag, attrs) {
  const node = document.createElementNS(JOINTS_SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

function jointsButton(className, text, title, onClick) {
  const button = utilEl("button", `de-joints-btn ${className}`.trim(), text);
  button.type = "button";
  if (title) button.title = title;
  button.addEventListener("mousedown", (event) => event.preventDefault()); // the app keeps the keyboard
  button.addEventListener("click", onClick);
  return button;
}

function createJoints(ctx, player) {
  const { bus, state, model } = ctx;
  const recording = state.recording || {};
  const nFrames = Math.max(1, Math.floor(recording.n_frames || 1));
  if (!ctx.labels.keypoints) ctx.labels.keypoints = new Map();
  const kept = ctx.labels.keypoints;

  let mode = false;
  let chosen = null; // the joint a click places
  let hover = null; // the joint under the pointer
  let drag = null; // {overlay, joint, row, startX, startY, moved, preview: {u_px, v_px}}
  let pending = new Map(); // joint -> {u_px, v_px} drawn there until the kernel answers a move
  let byJoint = new Map(); // joint -> its keyframes sorted by frame
  let destroyed = false;

  const jointNames = () => {
    const listed = (model.get("vocabulary") || {}).joint;
    const names = Array.isArray(listed) && listed.length ? [...listed] : [];
    for (const name of byJoint.keys()) if (!names.includes(name)) names.push(name);
    return names;
  };
  const shortcutOf = (action) => {
    const keys = (model.get("shortcuts") || {})[action];
    return Array.isArray(keys) ? keys[0] : keys || "";
  };
  const keyOfJoint = (joint) => {
    for (const [action, names] of Object.entries(JOINTS_KEY_ACTIONS)) {
      if (names.includes(joint)) return shortcutOf(action);
    }
    return "";
  };

  function rebuild() {
    const groups = new Map();
    for (const row of kept.values()) {
      if (!groups.has(row.joint)) groups.set(row.joint, []);
      groups.get(row.joint).push(row);
    }
    for (const rows of groups.values()) rows.sort((a, b) => a.frame_index - b.frame_index);
    byJoint = groups;
  }

  function position(joint, frame) {
    return jointsInterpolate(byJoint.get(joint), frame);
  }

  function selectedRow() {
    const sel = state.selection;
    return sel && sel.kind === "keypoint" ? kept.get(sel.id) || null : null;
  }

  // -- overlays on the IR and depth views ---------------------------------------------------------
  const overlays = [];
  const projection = recording.rgb_projection || null;
  for (const info of recording.streams || []) {
    if (!info || !(info.width > 0 && info.height > 0)) continue;
    const passive = info.name === "rgb" && Boolean(projection);
    if (!JOINTS_STREAMS.includes(info.name) && !passive) continue;
    const figure = player && player.el
      ? player.el.querySelector(`.de-player-view[data-stream="${info.name}"]`) : null;
    if (!figure) continue;
    const svg = jointsSvg("svg", {
      class: "de-joints-overlay", viewBox: `0 0 ${info.width} ${info.height}`, preserveAspectRatio: "xMidYMid meet",
    });
    svg.dataset.stream = info.name;
    const canvas = figure.querySelector("canvas");
    figure.insertBefore(svg, canvas ? canvas.nextSibling : figure.firstChild);
    const badge = utilEl("div", "de-joints-badge");
    badge.hidden = true;
    figure.appendChild(badge);
    const overlay = { name: info.name, width: info.width, height: info.height, figure, svg, badge, passive };
    overlays.push(overlay);
    if (passive) { // shown, not clicked: the RGB camera's pixels cannot be lifted on the depth
      svg.classList.add("de-joints-overlay--passive");
      continue;
    }
    svg.addEventListener("pointerdown", (event) => onPointerDown(event, overlay));
    svg.addEventListener("pointermove", (event) => onPointerMove(event, overlay));
    svg.addEventListener("pointerup", (event) => onPointerUp(event, overlay));
    svg.addEventListener("pointercancel", () => {
      drag = null;
      scheduleDraw();
    });
    svg.addEventListener("pointerover", (event) => {
      setHover(event.target.closest && event.target.closest(".de-joints-marker"));
    });
    svg.addEventListener("pointerout", (event) => {
      const to = event.relatedTarget;
      if (!(to && to.closest && to.closest(".de-joints-marker"))) setHover(null);
    });
    // In joint mode a double click places twice; it must not also switch the stream view.
    svg.addEventListener("dblclick", (event) => {
      if (mode || (event.target.closest && event.target.closest(".de-joints-marker"))) event.stopPropagation();
    });
  }

  function setHover(marker) {
    const joint = marker ? marker.dataset.joint : null;
    if (joint !== hover) {
      hover = joint;
      scheduleDraw();
    }
  }

  /** Depth-image pixel (u, v) under a pointer event on `overlay`, or null when it is outside the image. */
  function toImage(overlay, event) {
    const ctm = overlay.svg.getScreenCTM();
    if (!ctm) return null;
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(ctm.inverse());
    const u = p.x - 0.5;
    const v = p.y - 0.5;
    if (!(u >= -0.5 && u < overlay.width - 0.5 && v >= -0.5 && v < overlay.height - 0.5)) return null;
    return { u_px: u, v_px: v };
  }

  function clientXY(stream, u, v) {
    const overlay = overlays.find((o) => o.name === stream);
    const ctm = overlay ? overlay.svg.getScreenCTM() : null;
    if (!ctm) return null;
    const p = new DOMPoint(u + 0.5, v + 0.5).matrixTransform(ctm);
    return [p.x, p.y];
  }

  function onPointerDown(event, overlay) {
    if (event.button !== 0) return;
    const marker = event.target.closest && event.target.closest(".de-joints-marker");
    if (!marker && !mode) return;
    const joint = marker ? marker.dataset.joint : null;
    const at = joint ? position(joint, state.frame) : null;
    drag = {
      overlay, joint, row: at && at.row, startX: event.clientX, startY: event.clientY, moved: false, preview: null,
    };
    try {
      overlay.svg.setPointerCapture(event.pointerId);
    } catch (err) { /* a synthetic event has no pointer to capture */ }
    event.preventDefault();
  }

  function onPointerMove(event, overlay) {
    if (!drag || drag.overlay !== overlay) return;
    if (!drag.moved && Math.hypot(event.clientX - drag.startX, event.clientY - drag.startY) > JOINTS_DRAG_PX) {
      drag.moved = true;
    }
    if (drag.moved && drag.joint) {
      drag.preview = toImage(overlay, event) || drag.preview;
      scheduleDraw();
    }
  }

  function onPointerUp(event, overlay) {
    if (!drag || drag.overlay !== overlay) return;
    const d = drag;
    drag = null;
    try {
      overlay.svg.releasePointerCapture(event.pointerId);
    } catch (err) { /* not captured */ }
    if (d.joint && d.moved) {
      const to = toImage(overlay, event) || d.preview;
      if (to) moveJoint(d.joint, d.row, to);
    } else if (d.joint) {
      choose(d.joint);
      ctx.select(d.row ? { kind: "keypoint", id: d.row.id } : null);
    } else if (!d.moved) {
      const at = toImage(overlay, event);
      if (at) place(chosen, at);
    }
    scheduleDraw();
  }

  function stillFrame() {
    if (!state.playing) return true;
    bus.emit("play", { playing: false });
    ctx.notify("info", "Paused: joints are placed on a still frame. Click again.");
    return false;
  }

  function place(joint, at) {
    if (!joint) {
      ctx.notify("info", "Choose a joint first (the 3D joints panel, or its key), then click where it is.");
      return Promise.resolve(null);
    }
    if (!stillFrame()) return Promise.resolve(null);
    const frame = state.frame;
    return ctx.edit("place_keypoint", { frame_index: frame, joint, u_px: at.u_px, v_px: at.v_px }).then((reply) => {
      const row = reply && reply.ok && reply.changes && (reply.changes.keypoints || [])[0];
      if (row && state.frame === frame) ctx.select({ kind: "keypoint", id: row.id });
      return reply;
    }, (err) => ctx.notify("error", err.message));
  }

  /** A dragged marker: its keyframe on this frame moves; an interpolated one becomes a keyframe here. */
  function moveJoint(joint, row, to) {
    if (!stillFrame()) return;
    pending.set(joint, to);
    const done = () => {
      pending.delete(joint);
      scheduleDraw();
    };
    const request = row && row.frame_index === state.frame
      ? ctx.edit("move_keypoint", { id: row.id, version: row.version, u_px: to.u_px, v_px: to.v_px })
      : ctx.edit("place_keypoint", { frame_index: state.frame, joint, u_px: to.u_px, v_px: to.v_px });
    request.then(done, (err) => {
      done();
      ctx.notify("error", err.message);
    });
  }

  // -- drawing ------------------------------------------------------------------------------------
  let drawRaf = 0;
  function scheduleDraw() {
    if (!drawRaf && !destroyed) {
      drawRaf = requestAnimationFrame(() => {
        drawRaf = 0;
        draw();
      });
    }
  }

  function draw() {
    const frame = state.frame;
    const sel = selectedRow();
    for (const overlay of overlays) {
      overlay.svg.classList.toggle("de-joints-overlay--active", mode && !overlay.passive);
      overlay.badge.hidden = !mode || overlay.passive;
      overlay.badge.textContent = chosen ? `Place: ${jointsTitle(chosen)}` : "Joint mode: choose a joint";
      overlay.badge.title = "Joint mode: a click here places the chosen joint on this frame (Escape leaves it)";
      if (overlay.figure.hidden) continue;
      const box = overlay.svg.getBoundingClientRect();
      const scale = Math.min(box.width / overlay.width, box.height / overlay.height) || 1;
      const r = JOINTS_MARKER_PX / scale;
      const nodes = [];
      for (const joint of jointNames()) {
        let at = position(joint, frame);
        if (overlay.passive) {
          const uv = jointsProjectRgb(projection, at);
          // the calibration's image size may differ from the stream's (a resized RGB stream)
          at = uv ? { ...at, u_px: ((uv.u_px + 0.5) * overlay.width) / projection.width - 0.5,
            v_px: ((uv.v_px + 0.5) * overlay.height) / projection.height - 0.5 } : null;
        } else {
          const moving = drag && drag.joint === joint && drag.preview ? drag.preview : pending.get(joint);
          if (moving) at = { ...(at || { keyframe: true, row: null }), u_px: moving.u_px, v_px: moving.v_px };
        }
        if (!at) continue;
        const selected = Boolean(sel && at.row && sel.id === at.row.id);
        const g = jointsSvg("g", { class: "de-joints-marker" });
        g.dataset.joint = joint;
        g.dataset.keyframe = at.keyframe ? "1" : "0";
        if (at.row) g.dataset.id = String(at.row.id);
        g.classList.toggle("de-joints-marker--keyframe", at.keyframe);
        g.classList.toggle("de-joints-marker--selected", selected);
        g.classList.toggle("de-joints-marker--chosen", mode && joint === chosen);
        const x = at.u_px + 0.5;
        const y = at.v_px + 0.5;
        const color = jointsColor(joint);
        if (selected) g.appendChild(jointsSvg("circle", { class: "de-joints-ring", cx: x, cy: y, r: r * 1.9 }));
        g.appendChild(jointsSvg("circle", {
          class: "de-joints-dot", cx: x, cy: y, r, stroke: color, "stroke-width": (at.keyframe ? 1.5 : 2.5) / scale,
          fill: at.keyframe ? color : "rgba(0,0,0,0.01)", // hollow, yet it still takes the pointer
        }));
        const title = jointsSvg("title");
        title.textContent = `${jointsTitle(joint)} · ${at.keyframe ? `keyframe, frame ${frame}` : "interpolated"}`;
        g.appendChild(title);
        if (selected || hover === joint || (drag && drag.joint === joint)) {
          const label = jointsSvg("text", {
            class: "de-joints-label", x: x + r * 1.6, y: y - r * 1.2, "font-size": 12 / scale,
            "stroke-width": 3 / scale,
          });
          label.textContent = jointsTitle(joint);
          g.appendChild(label);
        }
        nodes.push(g);
      }
      overlay.svg.replaceChildren(...nodes);
    }
    drawPanelFrame();
  }

  // -- the panel (side bar) -------------------------------------------------------------------------
  // Not .de-shell-panel: the browser tests read the last of those as the selection's details.
  const panel = utilEl("section", "de-joints-panel");
  panel.dataset.part = "joints";
  const head = utilEl("div", "de-shell-panel-head");
  const title = utilEl("h3", "de-shell-panel-title", "3D joints");
  const modeButton = jointsButton("de-joints-mode", "", "", () => setMode(!mode));
  head.append(title, modeButton);
  const body = utilEl("div", "de-shell-panel-body");
  const hint = utilEl("p", "de-joints-hint");
  const list = utilEl("div", "de-joints-list");
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", "Joints");
  const detail = utilEl("div", "de-joints-detail");
  body.append(hint, list, detail);
  panel.append(head, body);
  const items = new Map(); // joint -> {item, strip, playhead, count}

  function drawPanel() {
    const names = jointNames();
    const fresh = names.some((n) => !items.has(n)) || items.size !== names.length;
    if (fresh) {
      items.clear();
      list.replaceChildren();
      for (const joint of names) {
        const item = utilEl("div", "de-joints-item");
        item.dataset.joint = joint;
        item.setAttribute("role", "option");
        item.addEventListener("mousedown", (event) => event.preventDefault());
        const swatch = utilEl("span", "de-joints-swatch");
        swatch.style.background = jointsColor(joint);
        swatch.style.color = jointsColor(joint); // the ring of an interpolated joint (CSS currentColor)
        const name = utilEl("span", "de-joints-name", jointsTitle(joint));
        const strip = utilEl("div", "de-joints-strip");
        strip.title = "Keyframes of this joint: click to go to the nearest";
        const span = utilEl("div", "de-joints-span");
        const playhead = utilEl("div", "de-joints-playhead");
        strip.append(span, playhead);
        const count = utilEl("span", "de-joints-count");
        const key = utilEl("kbd", "de-joints-key");
        item.append(swatch, name, strip, count, key);
        item.addEventListener("click", (event) => {
          if (strip.contains(event.target)) {
            const box = strip.getBoundingClientRect();
            const frame = Math.round(((event.clientX - box.left) / Math.max(1, box.width)) * (nFrames - 1));
            const nearest = (byJoint.get(joint) || []).reduce((best, r) => (best === null
              || Math.abs(r.frame_index - frame) < Math.abs(best - frame) ? r.frame_index : best), null);
            choose(joint);
            if (nearest !== null) ctx.seek(nearest, "joints");
            return;
          }
          choose(joint);
          if (!mode) setMode(true);
        });
        list.appendChild(item);
        items.set(joint, { item, strip, span, playhead, count, key, ticks: [] });
      }
    }
    for (const [joint, entry] of items) {
      const rows = byJoint.get(joint) || [];
      entry.count.textContent = rows.length ? String(rows.length) : "";
      entry.count.title = `${rows.length} keyframe${rows.length === 1 ? "" : "s"}`;
      entry.key.textContent = keyOfJoint(joint);
      entry.key.hidden = !entry.key.textContent;
      for (const tick of entry.ticks) tick.remove();
      entry.ticks = rows.map((r) => {
        const tick = utilEl("div", "de-joints-tick");
        tick.style.left = `${(100 * r.frame_index) / Math.max(1, nFrames - 1)}%`;
        tick.style.background = jointsColor(joint);
        entry.strip.appendChild(tick);
        return tick;
      });
      const first = rows.length ? rows[0].frame_index : 0;
      const last = rows.length ? rows[rows.length - 1].frame_index : 0;
      entry.span.hidden = rows.length < 2;
      entry.span.style.left = `${(100 * first) / Math.max(1, nFrames - 1)}%`;
      entry.span.style.width = `${(100 * (last - first)) / Math.max(1, nFrames - 1)}%`;
      entry.item.classList.toggle("de-joints-item--chosen", joint === chosen);
      entry.item.setAttribute("aria-selected", String(joint === chosen));
    }
    const modeKey = shortcutOf("joint_mode");
    modeButton.textContent = mode ? "Joint mode: on" : "Joint mode: off";
    modeButton.classList.toggle("de-joints-mode--on", mode);
    modeButton.setAttribute("aria-pressed", String(mode));
    modeButton.title = `Click on the IR or depth view to place the chosen joint (${modeKey || "no key"})`;
    hint.textContent = mode
      ? (chosen ? `Click on the IR or depth view to place the ${jointsTitle(chosen)} on frame ${state.frame}.`
        : "Choose a joint below (or press its key), then click where it is.")
      : `Turn joint mode on (${modeKey || "the button"}) to place joints. Keyframes are solid, positions `
        + "between them (interpolated) hollow; drag a marker to move it.";
    drawDetail();
    drawPanelFrame();
  }

  function drawPanelFrame() {
    const frame = state.frame;
    const x = `${(100 * frame) / Math.max(1, nFrames - 1)}%`;
    for (const [joint, entry] of items) {
      entry.playhead.style.left = x;
      const at = position(joint, frame);
      entry.item.classList.toggle("de-joints-item--here", Boolean(at && at.keyframe));
      entry.item.classList.toggle("de-joints-item--between", Boolean(at && !at.keyframe));
    }
    if (mode && chosen) {
      hint.textContent = `Click on the IR or depth view to place the ${jointsTitle(chosen)} on frame ${frame}.`;
    }
  }

  function drawDetail() {
    const row = selectedRow();
    if (!row) {
      detail.replaceChildren();
      detail.hidden = true;
      return;
    }
    detail.hidden = false;
    const fmt = (value, digits) => (value === null || value === undefined ? "—" : Number(value).toFixed(digits));
    const kv = utilEl("div", "de-joints-kv");
    const pairs = [
      ["Joint", jointsTitle(row.joint)],
      ["Frame", `#${row.frame_index}`],
      ["Pixel (u, v)", `${fmt(row.u_px, 1)}, ${fmt(row.v_px, 1)}`],
      ["3D (x, y, z) m", `${fmt(row.x_m, 3)}, ${fmt(row.y_m, 3)}, ${fmt(row.z_m, 3)}`],
      ["Author", row.author || "—"],
    ];
    for (const [k, v] of pairs) kv.append(utilEl("div", "de-joints-k", k), utilEl("div", "de-joints-v", v));
    const foot = utilEl("div", "de-shell-panel-foot");
    foot.append(
      jointsButton("", "◀ key", `Previous keyframe (${shortcutOf("prev_keyframe") || "no key"})`, () => jump(-1)),
      jointsButton("", "key ▶", `Next keyframe (${shortcutOf("next_keyframe") || "no key"})`, () => jump(1)),
      jointsButton("de-joints-btn--danger", "Delete", "Delete this keyframe", () => deleteRow(row)),
    );
    detail.replaceChildren(kv, foot);
  }

  // -- actions ---------------------------------------------------------------------------------------
  function setMode(value) {
    mode = Boolean(value);
    if (mode && !chosen) chosen = jointNames()[0] || null;
    if (player && player.el) player.el.classList.toggle("de-joints-active", mode);
    drawPanel();
    scheduleDraw();
  }

  function choose(joint) {
    chosen = joint; // the panel and the views' badge say which
    drawPanel();
    scheduleDraw();
  }

  function pickByKey(action) {
    const names = (JOINTS_KEY_ACTIONS[action] || []).filter((n) => jointNames().includes(n));
    if (!names.length) return;
    const at = names.indexOf(chosen);
    choose(mode && at >= 0 ? names[(at + 1) % names.length] : names[0]);
    if (!mode) setMode(true);
  }

  function jump(direction) {
    const rows = chosen ? byJoint.get(chosen) || [] : [...kept.values()];
    const frames = [...new Set(rows.map((r) => r.frame_index))].sort((a, b) => a - b);
    const frame = state.frame;
    const target = direction > 0 ? frames.find((f) => f > frame) : [...frames].reverse().find((f) => f < frame);
    if (target === undefined) {
      const whose = chosen ? `the ${jointsTitle(chosen)}` : "any joint";
      ctx.notify("info", `No ${direction > 0 ? "later" : "earlier"} keyframe of ${whose}.`, { key: "joint" });
      return;
    }
    ctx.seek(target, "joints");
  }

  function deleteRow(row) {
    return ctx.edit("delete_keypoint", { id: row.id, version: row.version })
      .catch((err) => ctx.notify("error", err.message));
  }

  const actions = {
    joint_mode: () => setMode(!mode),
    prev_keyframe: () => jump(-1),
    next_keyframe: () => jump(1),
  };
  for (const action of Object.keys(JOINTS_KEY_ACTIONS)) actions[action] = () => pickByKey(action);
  const otherDelete = ctx.actions.delete_selected;
  actions.delete_selected = (event) => {
    const row = selectedRow();
    if (row) return deleteRow(row);
    return typeof otherDelete === "function" ? otherDelete(event) : undefined;
  };
  Object.assign(ctx.actions, actions);

  // -- wiring ----------------------------------------------------------------------------------------
  const offs = [
    bus.on("frame", ({ frame }) => {
      const row = selectedRow();
      if (row && row.frame_index !== frame) ctx.select(null); // a keyframe is selected where it is shown
      scheduleDraw();
    }),
    bus.on("labels", () => {
      rebuild();
      drawPanel();
      scheduleDraw();
    }),
    bus.on("select", () => {
      drawDetail();
      scheduleDraw();
    }),
    bus.on("resize", scheduleDraw),
    bus.on("vocabulary", () => {
      drawPanel();
      scheduleDraw();
    }),
    bus.on("escape", (payload) => {
      if (drag) {
        drag = null;
        if (payload) payload.handled = true;
      } else if (mode && !selectedRow()) {
        setMode(false);
        if (payload) payload.handled = true;
      }
      scheduleDraw();
    }),
  ];
  const onShortcuts = () => drawPanel();
  model.on("change:shortcuts", onShortcuts);
  const resizeObserver = typeof ResizeObserver === "function" ? new ResizeObserver(scheduleDraw) : null;
  if (resizeObserver) for (const overlay of overlays) resizeObserver.observe(overlay.figure);

  const hook = {
    get mode() { return mode; },
    get joint() { return chosen; },
    clientXY,
    positions: (frame) => Object.fromEntries(jointNames().map((j) => [j, position(j, frame)]).filter(([, p]) => p)),
  };
  window.__deepepil_joints = hook;
  rebuild();
  drawPanel();
  scheduleDraw();

  function destroy() {
    if (destroyed) return;
    destroyed = true;
    if (drawRaf) cancelAnimationFrame(drawRaf);
    for (const off of offs) off();
    model.off("change:shortcuts", onShortcuts);
    if (resizeObserver) resizeObserver.disconnect();
    for (const overlay of overlays) {
      overlay.svg.remove();
      overlay.badge.remove();
    }
    if (player && player.el) player.el.classList.remove("de-joints-active");
    for (const [name, fn] of Object.entries(actions)) if (ctx.actions[name] === fn) delete ctx.actions[name];
    if (otherDelete && !ctx.actions.delete_selected) ctx.actions.delete_selected = otherDelete;
    if (window.__deepepil_joints === hook) delete window.__deepepil_joints;
    panel.remove();
  }

  return { el: null, panel, destroy, actions };
}
