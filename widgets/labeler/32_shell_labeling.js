// 32_shell_labeling.js: the labeling screen's frame: menu strip (save state, undo/redo, help),
// the slots of the player and the timeline, and the side panel (seizure panel, selection details).

function shellStatusView(status) {
  const state = (status && status.state) || "idle";
  const pending = status && status.pending ? Number(status.pending) : 0;
  const map = {
    idle: ["All changes saved", "ok"],
    saved: ["Saved ✓", "ok"],
    saving: ["Saving…", "busy"],
    conflict: ["Conflict", "warn"],
    error: ["Not saved: error", "bad"],
    offline: [`Offline${pending ? ` · ${pending} pending` : ""}`, "bad"],
  };
  const [text, tone] = map[state] || [state, "ok"];
  return { text, tone, title: (status && status.message) || text };
}

function shellCreateMenu(ctx, shell) {
  const model = ctx.model;
  const el = utilEl("nav", "de-shell-menu");
  el.setAttribute("aria-label", "Recording menu");
  const back = shellButton("← Recordings", "de-shell-btn--ghost", () => ctx.actions.close_recording(),
    "Close this recording and go back to the list");
  // The title is plain text (clicking it only gives the app the keyboard); the patient form has its own button.
  const title = utilEl("div", "de-shell-menu-title");
  const name = utilEl("span", "de-shell-strong");
  const code = utilEl("span", "de-shell-code de-shell-menu-code");
  code.title = "Patient code (pseudonymous)";
  title.append(name, code);
  const patientButton = shellButton("", "de-shell-btn--small de-shell-patient-btn", () => {
    const patient = model.get("patient");
    if (patient) shell.openPatientForm(patient);
    else ctx.notify("info", "This recording's patient record is not available.");
  });
  const status = utilEl("div", "de-shell-status");
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  const dot = utilEl("span", "de-shell-status-dot");
  const statusText = utilEl("span");
  status.append(dot, statusText);
  const focusHint = utilEl("span", "de-shell-focus-hint");
  const undo = shellButton("↶ Undo", "de-shell-btn--ghost", () => ctx.actions.undo());
  const redo = shellButton("↷ Redo", "de-shell-btn--ghost", () => ctx.actions.redo());
  const help = shellButton("? Help", "de-shell-btn--ghost", () => ctx.actions.help());
  el.append(back, title, patientButton, utilEl("div", "de-shell-grow"), focusHint, status, undo, redo, help);

  function keyOf(action) {
    const keys = (model.get("shortcuts") || {})[action];
    return Array.isArray(keys) ? keys[0] : keys;
  }
  function draw() {
    const rec = ctx.state.recording || model.get("recording");
    name.textContent = rec ? rec.name : "";
    const patient = model.get("patient");
    code.textContent = (patient && patient.code) || (rec && rec.patient_code) || "";
    code.hidden = !code.textContent;
    const incomplete = Boolean(patient && patient.complete === false);
    patientButton.hidden = !patient;
    patientButton.textContent = incomplete ? "Complete patient form" : "Patient form";
    patientButton.classList.toggle("de-shell-patient-btn--incomplete", incomplete);
    patientButton.title = incomplete ? "The patient form has empty clinical fields: open it to fill them in"
      : "Open the patient form (pseudonymous clinical data)";
    const view = shellStatusView(model.get("status"));
    statusText.textContent = view.text;
    status.title = view.title;
    status.className = `de-shell-status de-shell-status--${view.tone}`;
    undo.disabled = !model.get("can_undo");
    redo.disabled = !model.get("can_redo");
    undo.title = `Undo your last change (${keyOf("undo") || "no key"})`;
    redo.title = `Redo (${keyOf("redo") || "no key"})`;
    help.title = `Keyboard shortcuts (${keyOf("help") || "no key"})`;
  }
  const events = ["change:status", "change:can_undo", "change:can_redo", "change:recording", "change:shortcuts",
    "change:patient"];
  for (const event of events) model.on(event, draw);
  draw();
  return {
    el,
    draw,
    destroy() {
      for (const event of events) model.off(event, draw);
    },
  };
}

/**
 * Time row: "mm:ss.ff  #frame  [Set to playhead] [Go]"; `onChange(frame)` when edited. An
 * `exclusive` boundary (an interval's end) is the frame after the last one inside: "Set to
 * playhead" makes the playhead's frame the last one inside, and "Go" shows that last frame.
 */
function shellTimeRow(ctx, labelText, frame, onChange, { allowEmpty = false, exclusive = false } = {}) {
  const fps = ctx.state.recording ? ctx.state.recording.fps : 30;
  const input = utilEl("input", "de-shell-input de-shell-time");
  input.value = frame === null || frame === undefined ? "" : utilFormatTime(frame, fps);
  input.placeholder = "mm:ss.ff";
  input.spellcheck = false;
  const frameNo = utilEl("span", "de-shell-frame", frame === null || frame === undefined ? "" : `#${frame}`);
  frameNo.title = "Frame number";
  const row = shellField(labelText, input);
  row.classList.add("de-shell-field--time");
  row.querySelector(".de-shell-label").after(frameNo);
  const tools = utilEl("div", "de-shell-time-tools");
  const here = shellButton("At playhead", "de-shell-btn--small", () => onChange(ctx.state.frame + (exclusive ? 1 : 0)),
    exclusive ? "The frame under the playhead becomes the last one inside" : "Use the frame under the playhead");
  const go = shellButton("Go", "de-shell-btn--small", () => {
    if (frame !== null && frame !== undefined) ctx.seek(exclusive ? frame - 1 : frame, "panel");
  }, exclusive ? "Show the last frame inside" : "Move the playhead here");
  go.disabled = frame === null || frame === undefined;
  tools.append(here, go);
  row.insertBefore(tools, row.querySelector(".de-shell-field-error"));
  input.addEventListener("change", () => {
    const text = input.value.trim();
    if (!text && allowEmpty) {
      onChange(null);
      return;
    }
    try {
      const value = utilParseTime(text, fps);
      row.setError("");
      onChange(value);
    } catch (err) {
      row.setError(err.message);
    }
  });
  return row; // a text input fires "change" on Enter and on leaving it once edited
}

function shellCreateSidePanel(ctx, shell) {
  const model = ctx.model;
  const el = utilEl("aside", "de-shell-side");
  const seizureBox = utilEl("section", "de-shell-panel");
  const detailBox = utilEl("section", "de-shell-panel");
  el.append(seizureBox, detailBox);
  let currentSeizureId = null;
  let dirty = false;

  const vocab = () => model.get("vocabulary") || {};
  const send = (op, args) => ctx.edit(op, args).catch((err) => ctx.notify("error", err.message));

  function seizures() {
    return [...ctx.labels.seizures.values()].sort((a, b) => (a.onset_frame ?? 0) - (b.onset_frame ?? 0));
  }
  function currentSeizure() {
    const sel = ctx.state.selection;
    if (sel && sel.kind === "seizure" && ctx.labels.seizures.has(sel.id)) currentSeizureId = sel.id;
    if (currentSeizureId !== null && ctx.labels.seizures.has(currentSeizureId)) return ctx.labels.seizures.get(currentSeizureId);
    const list = seizures();
    currentSeizureId = list.length ? list[0].id : null;
    return list[0] || null;
  }

  /** Set a seizure field: update the current seizure, or create one when there is none. */
  function setSeizure(changes) {
    const seizure = currentSeizure();
    if (seizure) {
      changes = Object.fromEntries(Object.entries(changes).filter(([k, v]) => seizure[k] !== v));
      if (!Object.keys(changes).length) return Promise.resolve();
      const on = changes.onset_frame !== undefined ? changes.onset_frame : seizure.onset_frame;
      const off = changes.offset_frame !== undefined ? changes.offset_frame : seizure.offset_frame;
      if (on !== null && off !== null && off !== undefined && off <= on) {
        ctx.notify("warning", "The seizure offset must come after its onset.");
        return Promise.resolve();
      }
      return send("update_seizure", { id: seizure.id, version: seizure.version, changes });
    }
    if (changes.onset_frame === undefined) {
      ctx.notify("info", "Set the seizure onset first (button or shortcut), then classify it.");
      return Promise.resolve();
    }
    return send("add_seizure", { onset_frame: changes.onset_frame, offset_frame: null, ...changes }).then((reply) => {
      const added = reply && reply.changes && reply.changes.seizures && reply.changes.seizures[0];
      if (added) currentSeizureId = added.id;
    });
  }

  function drawSeizure() {
    const v = vocab();
    const seizure = currentSeizure();
    const head = utilEl("div", "de-shell-panel-head");
    head.appendChild(utilEl("h3", "de-shell-panel-title", "Seizure"));
    const list = seizures();
    if (list.length > 1) {
      const pick = shellSelect(list.map((s, i) => ({ value: String(s.id), text: `Seizure ${i + 1}` })), String(seizure.id), { empty: null });
      pick.classList.add("de-shell-input--compact");
      pick.addEventListener("change", () => {
        currentSeizureId = Number(pick.value);
        ctx.select({ kind: "seizure", id: currentSeizureId });
        draw();
      });
      head.appendChild(pick);
    }
    const body = utilEl("div", "de-shell-panel-body");
    if (!seizure) {
      body.appendChild(utilEl("p", "de-shell-muted", "No seizure marked yet. Move the playhead to the clinical onset and set it."));
    }
    const times = utilEl("div", "de-shell-pair");
    times.append(
      shellTimeRow(ctx, "Onset", seizure ? seizure.onset_frame : null, (f) => setSeizure({ onset_frame: f })),
      shellTimeRow(ctx, "Offset", seizure ? seizure.offset_frame : null, (f) => setSeizure({ offset_frame: f }),
        { allowEmpty: true, exclusive: true }),
    );
    body.appendChild(times);
    const choose = (labelText, field, options, grouped) => {
      const select = shellSelect(grouped ? shellSeizureTypeOptions(options) : options, seizure ? seizure[field] : null, { name: field });
      select.disabled = !seizure;
      select.addEventListener("change", () => setSeizure({ [field]: select.value || null }));
      return shellField(labelText, select);
    };
    const classes = utilEl("div", "de-shell-pair");
    classes.append(choose("Awareness", "awareness", v.awareness), choose("Lateralization", "lateralization", v.lateralization),
      choose("Localization", "localization", v.localization));
    body.append(choose("Type (ILAE 2017)", "seizure_type", v.seizure_type, true), classes);
    if (seizure) {
      const foot = utilEl("div", "de-shell-panel-foot");
      foot.append(utilEl("span", "de-shell-muted", seizure.author ? `by ${seizure.author}` : ""),
        shellButton("Delete seizure", "de-shell-btn--danger de-shell-btn--small", () => {
          send("delete_seizure", { id: seizure.id, version: seizure.version });
        }));
      body.appendChild(foot);
    }
    seizureBox.replaceChildren(head, body);
  }

  function readOnly(labelText, value) {
    const row = utilEl("div", "de-shell-field de-shell-field--ro");
    row.append(utilEl("span", "de-shell-label", labelText), utilEl("span", "de-shell-value", value ?? "—"));
    return row;
  }

  function drawDetails() {
    const v = vocab();
    const sel = ctx.state.selection;
    const head = utilEl("div", "de-shell-panel-head");
    const body = utilEl("div", "de-shell-panel-body");
    const table = sel ? { moi: "mois", suggestion: "suggestions", seizure: "seizures" }[sel.kind] : null;
    const row = table ? ctx.labels[table].get(sel.id) : null;
    if (!row || sel.kind === "seizure") {
      head.appendChild(utilEl("h3", "de-shell-panel-title", "Selection"));
      body.appendChild(utilEl("p", "de-shell-muted", sel && sel.kind === "seizure"
        ? "The selected seizure is shown above."
        : sel && sel.kind === "keypoint" ? "The selected joint is shown in the 3D joints panel below."
          : "Select a movement of interest or a suggestion on the timeline to see and edit it here."));
      detailBox.replaceChildren(head, body);
      return;
    }
    const swatch = utilEl("span", "de-shell-swatch");
    swatch.style.background = utilRegionColor(row.region);
    const title = utilEl("h3", "de-shell-panel-title", sel.kind === "moi" ? "Movement of interest" : "Suggestion");
    head.append(swatch, title);
    const fps = ctx.state.recording ? ctx.state.recording.fps : 30;
    if (sel.kind === "moi") {
      const update = (changes) => {
        const changed = Object.fromEntries(Object.entries(changes).filter(([k, v]) => row[k] !== v));
        return Object.keys(changed).length ? send("update_moi", { id: row.id, version: row.version, changes: changed })
          : Promise.resolve();
      };
      const region = shellSelect(v.regions, row.region, { empty: null, name: "region" });
      const label = shellSelect((v.labels || {})[row.region] || [], row.label, { empty: null, name: "label" });
      const labelRow = shellField("Label", label);
      region.addEventListener("change", () => {
        const allowed = (v.labels || {})[region.value] || [];
        if (allowed.includes(label.value)) {
          update({ region: region.value });
        } else {
          const next = shellSelect(allowed, null, { empty: "Choose a label…", name: "label" });
          next.id = label.id;
          label.replaceWith(next);
          labelRow.setError(`“${row.label}” is not a label of ${region.value}: choose one.`);
          next.addEventListener("change", () => next.value && update({ region: region.value, label: next.value }));
          next.focus();
        }
      });
      label.addEventListener("change", () => update({ label: label.value }));
      const laterality = shellSelect(v.laterality, row.laterality, { name: "laterality" });
      laterality.addEventListener("change", () => update({ laterality: laterality.value || null }));
      const setStart = (f) => (f < row.end_frame ? update({ start_frame: f })
        : ctx.notify("warning", "The start must come before the end."));
      const setEnd = (f) => (f > row.start_frame ? update({ end_frame: f })
        : ctx.notify("warning", "The end must come after the start."));
      const times = utilEl("div", "de-shell-pair");
      times.append(shellTimeRow(ctx, "Start", row.start_frame, setStart),
        shellTimeRow(ctx, "End", row.end_frame, setEnd, { exclusive: true }));
      body.append(shellField("Region", region), labelRow, shellField("Laterality", laterality), times,
        readOnly("Duration", `${((row.end_frame - row.start_frame) / fps).toFixed(2)} s · ${row.end_frame - row.start_frame} frames`),
        readOnly("Author", row.author),
        readOnly("Source", row.source + (row.confidence !== null && row.confidence !== undefined ? ` · confidence ${row.confidence}` : "")));
      const foot = utilEl("div", "de-shell-panel-foot");
      foot.append(
        shellButton("Loop", "de-shell-btn--small", () => {
          ctx.state.loop = [row.start_frame, row.end_frame];
          ctx.bus.emit("loop", { loop: ctx.state.loop });
          ctx.seek(row.start_frame, "panel");
        }, "Play this interval in a loop"),
        shellButton("Delete", "de-shell-btn--danger de-shell-btn--small", () => send("delete_moi", { id: row.id, version: row.version })),
      );
      body.appendChild(foot);
    } else {
      body.append(
        readOnly("Region", row.region), readOnly("Label", row.label), readOnly("Laterality", row.laterality),
        readOnly("Start", `${utilFormatTime(row.start_frame, fps)}  #${row.start_frame}`),
        readOnly("End", `${utilFormatTime(row.end_frame, fps)}  #${row.end_frame}`),
        readOnly("Score", row.score !== null && row.score !== undefined ? Number(row.score).toFixed(2) : "—"),
        readOnly("Model", row.model_version),
        readOnly("Decision", row.decision || "open"),
      );
      const foot = utilEl("div", "de-shell-panel-foot");
      const accept = shellButton("Accept", "de-shell-btn--primary de-shell-btn--small",
        () => send("accept_suggestion", { id: row.id, version: row.version }));
      const reject = shellButton("Reject", "de-shell-btn--small",
        () => send("reject_suggestion", { id: row.id, version: row.version }));
      const decided = row.decision && row.decision !== "open" && row.decision !== "pending";
      accept.disabled = decided;
      reject.disabled = decided;
      foot.append(accept, reject);
      if (row.has_explanation && typeof ctx.actions.explain === "function") {
        const on = Boolean(ctx.explainMode);
        const explain = shellButton(on ? "Hide explanation" : "Explanation", "de-shell-btn--small",
          () => ctx.actions.explain(), "Show where and when the model saw this (Grad-CAM over IR and depth)");
        explain.classList.add("de-shell-btn--explain");
        explain.setAttribute("aria-pressed", String(on));
        foot.append(explain);
      }
      body.appendChild(foot);
    }
    detailBox.replaceChildren(head, body);
  }

  function draw() {
    if (el.contains(document.activeElement) && utilIsTextTarget(document.activeElement)) {
      dirty = true; // do not pull a field from under the user's cursor; redraw when they leave it
      return;
    }
    dirty = false;
    drawSeizure();
    drawDetails();
  }
  const onFocusOut = () => setTimeout(() => {
    if (dirty && !(el.contains(document.activeElement) && utilIsTextTarget(document.activeElement))) draw();
  }, 0);
  el.addEventListener("focusout", onFocusOut);
  const offs = [ctx.bus.on("labels", draw), ctx.bus.on("select", draw), ctx.bus.on("explain", draw),
    ctx.bus.on("recording", () => {
    currentSeizureId = null;
    draw();
  })];
  model.on("change:vocabulary", draw);

  return {
    el,
    draw,
    destroy() {
      for (const off of offs) off();
      model.off("change:vocabulary", draw);
    },
  };
}

const SHELL_TIMELINE_MIN_PX = 180; // the timeline never gets less (its tracks scroll inside it)
const SHELL_VIEWS_MIN_PX = 140; // nor the video views
const SHELL_APP_MIN_PX = 560;
const SHELL_APP_MAX_PX = 1400;

/**
 * The ancestor that scrolls the app vertically (JupyterLab's notebook panel), or null. Boxes that
 * may scroll but only wrap their content (JupyterLab's output area) are passed over.
 */
function shellScroller(el) {
  const own = el.offsetHeight;
  for (let node = el.parentElement; node && node !== document.body; node = node.parentElement) {
    const overflow = window.getComputedStyle(node).overflowY;
    if (overflow !== "auto" && overflow !== "scroll") continue;
    if (node.clientHeight > own + 4 || node.scrollHeight > node.clientHeight + 1) return node;
  }
  return null;
}

/** Height the timeline needs to show every track without scrolling (toolbar, ruler, tracks, overview). */
function shellTimelineNaturalPx(timelineEl) {
  if (!timelineEl) return 0;
  let px = timelineEl.offsetHeight - timelineEl.clientHeight; // borders
  for (const child of timelineEl.children) {
    if (child.classList.contains("de-timeline-stage")) {
      for (const c of child.querySelectorAll(":scope > canvas")) px += c.offsetHeight;
    } else if (child.classList.contains("de-timeline-toolbar")) {
      px += child.offsetHeight;
    }
  }
  return px;
}

function shellCreateLabeling(ctx, shell) {
  const el = utilEl("section", "de-shell-screen de-shell-labeling");
  const menu = shellCreateMenu(ctx, shell);
  const work = utilEl("div", "de-shell-work");
  const main = utilEl("div", "de-shell-main");
  const playerSlot = utilEl("div", "de-shell-slot de-shell-slot--player");
  const timelineSlot = utilEl("div", "de-shell-slot de-shell-slot--timeline");
  main.append(playerSlot, timelineSlot);
  const side = shellCreateSidePanel(ctx, shell);
  work.append(main, side.el);
  el.append(menu.el, work);

  function placeholder(text) {
    return utilEl("div", "de-shell-placeholder", text);
  }

  /**
   * Size the screen to what the notebook shows (never taller than its view) and share the height:
   * the timeline gets what it needs to show every track (at least SHELL_TIMELINE_MIN_PX), the
   * player's views the rest (they pick one row or two, 10_player.js); then the screen shrinks to
   * its content, so no empty band is left under the transport bar or the timeline.
   */
  let fitting = false;
  let lastKey = "";
  function fit() {
    if (fitting || el.hidden || !el.isConnected) return;
    fitting = true;
    try {
      const scroller = shellScroller(el);
      const room = scroller ? scroller.clientHeight - 16 : window.innerHeight * 0.9;
      const maxApp = utilClamp(Math.floor(room), SHELL_APP_MIN_PX, SHELL_APP_MAX_PX);
      const menuPx = menu.el.offsetHeight;
      const player = playerSlot.querySelector(".de-player");
      const views = player && player.querySelector(".de-player-views");
      const timelineEl = timelineSlot.querySelector(".de-timeline");
      const slotBorder = timelineSlot.offsetHeight - timelineSlot.clientHeight;
      const timelinePx = Math.max(SHELL_TIMELINE_MIN_PX, shellTimelineNaturalPx(timelineEl) + slotBorder);
      let contentPx = maxApp;
      if (player && views) {
        const chrome = player.offsetHeight - views.offsetHeight;
        const budget = Math.max(SHELL_VIEWS_MIN_PX, maxApp - menuPx - chrome - timelinePx - 2);
        if (playerSlot.style.getPropertyValue("--de-player-max-height") !== `${budget}px`) {
          playerSlot.style.setProperty("--de-player-max-height", `${budget}px`);
          ctx.bus.emit("resize", {}); // the player lays its views out again (synchronously)
        }
        contentPx = menuPx + player.offsetHeight + timelinePx + 2;
      }
      const height = utilClamp(Math.ceil(contentPx), SHELL_APP_MIN_PX, maxApp);
      const key = `${height}`;
      if (key !== lastKey) {
        lastKey = key;
        el.style.height = `${height}px`;
      }
    } finally {
      fitting = false;
    }
  }
  let fitRaf = 0;
  const scheduleFit = () => {
    if (!fitRaf) {
      fitRaf = requestAnimationFrame(() => {
        fitRaf = 0;
        fit();
      });
    }
  };
  const observer = typeof ResizeObserver === "function" ? new ResizeObserver(() => fit()) : null;
  if (observer) observer.observe(work);
  window.addEventListener("resize", scheduleFit);
  let observedCanvases = [];
  function watchTimeline() {
    if (!observer) return;
    for (const c of observedCanvases) observer.unobserve(c);
    observedCanvases = [...timelineSlot.querySelectorAll(".de-timeline-stage > canvas")];
    for (const c of observedCanvases) observer.observe(c); // tracks added or removed: refit
  }

  /** Bring the whole screen into the notebook's view (when it opens a recording). */
  function reveal() {
    const scroller = shellScroller(el);
    if (!scroller) return;
    const box = el.getBoundingClientRect();
    const view = scroller.getBoundingClientRect();
    const below = box.bottom - (view.top + scroller.clientHeight) + 8;
    if (below > 0) scroller.scrollTop += Math.min(below, box.top - view.top - 8);
  }

  return {
    el,
    side,
    menu,
    fit,
    reveal,
    mount(parts) {
      playerSlot.replaceChildren(parts.player && parts.player.el ? parts.player.el : placeholder(
        ctx.state.recording ? "The video player is not available in this version." : "No recording open."));
      timelineSlot.replaceChildren(parts.timeline && parts.timeline.el ? parts.timeline.el : placeholder(
        ctx.state.recording ? "The timeline is not available in this version." : ""));
      // Parts may bring a panel for the side bar (the joints' chooser, 15_joints.js): below the others.
      for (const old of side.el.querySelectorAll(":scope > [data-part]")) old.remove();
      for (const part of Object.values(parts)) if (part && part.panel) side.el.appendChild(part.panel);
      side.draw();
      menu.draw();
      watchTimeline();
      fit();
      scheduleFit();
    },
    destroy() {
      if (observer) observer.disconnect();
      if (fitRaf) cancelAnimationFrame(fitRaf);
      window.removeEventListener("resize", scheduleFit);
      menu.destroy();
      side.destroy();
    },
  };
}
