// 33_shell_overlays.js: popups (toasts), modal dialogs (conflict, help, fatal errors) and the
// loading overlay.

/**
 * The part of `el` the user can see now (viewport px): its box clipped by the window and by every
 * scrolling ancestor (JupyterLab's notebook panel). {top, bottom, left, right}; empty when top >= bottom.
 */
function shellVisibleRect(el) {
  const box = el.getBoundingClientRect();
  let top = Math.max(box.top, 0);
  let bottom = Math.min(box.bottom, window.innerHeight || document.documentElement.clientHeight);
  let left = Math.max(box.left, 0);
  let right = Math.min(box.right, window.innerWidth || document.documentElement.clientWidth);
  for (let node = el.parentElement; node && node !== document.body; node = node.parentElement) {
    const style = window.getComputedStyle(node);
    if (!/(auto|scroll|hidden|clip)/.test(`${style.overflowY}${style.overflowX}`)) continue;
    const r = node.getBoundingClientRect();
    top = Math.max(top, r.top);
    bottom = Math.min(bottom, r.top + node.clientHeight);
    left = Math.max(left, r.left);
    right = Math.min(right, r.left + node.clientWidth);
  }
  return { top, bottom, left, right, box };
}

/**
 * Popups, bottom right of the part of the app on screen (the app may be taller than the notebook's
 * view). `show(level, text, {key})`: a popup with a `key` replaces the one showing with that key
 * (one popup per incident, e.g. "offline"); `dismiss(key)` closes it. `place()` follows scrolling
 * (and calls `onPlace()`, which keeps the dialogs in view too).
 */
function shellCreateToasts(root, onPlace) {
  const el = utilEl("div", "de-shell-toasts");
  el.setAttribute("aria-live", "polite");
  const recent = new Map(); // text -> time shown, to fold duplicates
  const keyed = new Map(); // key -> {toast, dismiss}
  let raf = 0;

  function place() {
    raf = 0;
    if (!root || !root.isConnected) return;
    if (onPlace) onPlace();
    if (!el.children.length) return;
    const { top, bottom, box } = shellVisibleRect(root);
    const margin = 14;
    const height = el.offsetHeight;
    // distance of the popups' bottom edge from the app's bottom edge, kept inside the app
    const fromBottom = bottom > top ? box.bottom - bottom + margin : margin;
    const most = Math.max(margin, box.height - height - margin);
    el.style.bottom = `${Math.round(utilClamp(fromBottom, margin, most))}px`;
  }
  function schedule() {
    if (!raf) raf = requestAnimationFrame(place);
  }
  const onScroll = () => schedule();
  document.addEventListener("scroll", onScroll, { capture: true, passive: true });
  window.addEventListener("resize", onScroll, { passive: true });

  function show(level, text, { key } = {}) {
    text = String(text || "");
    if (text) text = text.charAt(0).toUpperCase() + text.slice(1);
    const dedupe = `${level}:${text}`;
    const now = Date.now();
    if (recent.has(dedupe) && now - recent.get(dedupe) < 1500 && !key) return null;
    recent.set(dedupe, now);
    if (key && keyed.has(key)) {
      const held = keyed.get(key);
      if (held.toast.isConnected) return held.update(level, text);
      keyed.delete(key);
    }
    const toast = utilEl("div", "de-shell-toast");
    const icon = utilEl("span", "de-shell-toast-icon");
    const body = utilEl("div", "de-shell-toast-text");
    const close = shellButton("✕", "de-shell-toast-close", () => dismiss(), "Dismiss");
    close.setAttribute("aria-label", "Dismiss");
    toast.append(icon, body, close);
    let timer = null;
    function dismiss() {
      if (timer) clearTimeout(timer);
      if (key && keyed.get(key) && keyed.get(key).toast === toast) keyed.delete(key);
      toast.classList.add("de-shell-toast--out");
      setTimeout(() => {
        toast.remove();
        schedule();
      }, 180);
    }
    function update(newLevel, newText) {
      toast.className = `de-shell-toast de-shell-toast--${newLevel}`;
      toast.setAttribute("role", newLevel === "error" ? "alert" : "status");
      icon.textContent = { info: "i", warning: "!", error: "×" }[newLevel] || "i";
      body.textContent = newText;
      if (timer) clearTimeout(timer);
      timer = SHELL_TOAST_MS[newLevel] ? setTimeout(dismiss, SHELL_TOAST_MS[newLevel]) : null;
      schedule();
      return toast;
    }
    update(level, text);
    el.appendChild(toast);
    if (key) keyed.set(key, { toast, dismiss, update });
    while (el.children.length > 5) el.firstChild.remove();
    place();
    return toast;
  }
  function dismissKey(key) {
    const held = keyed.get(key);
    if (held) held.dismiss();
  }
  function drop(text) {
    for (const toast of [...el.children]) {
      if (toast.querySelector(".de-shell-toast-text").textContent === text) toast.remove();
    }
  }
  function destroy() {
    if (raf) cancelAnimationFrame(raf);
    document.removeEventListener("scroll", onScroll, { capture: true });
    window.removeEventListener("resize", onScroll);
  }
  return { el, show, drop, dismiss: dismissKey, place: schedule, destroy, clear: () => el.replaceChildren() };
}

/** A modal dialog in `layer`; returns {el, body, close()}; `onClose` runs once when it closes. */
function shellDialog(layer, titleText, { className = "", onClose, closable = true } = {}) {
  const backdrop = utilEl("div", "de-shell-backdrop");
  const dialog = utilEl("div", `de-shell-dialog ${className}`.trim());
  dialog.setAttribute("role", "dialog");
  dialog.setAttribute("aria-modal", "true");
  dialog.tabIndex = -1;
  const head = utilEl("div", "de-shell-dialog-head");
  const title = utilEl("h2", "de-shell-dialog-title", titleText);
  head.appendChild(title);
  const body = utilEl("div", "de-shell-dialog-body");
  dialog.append(head, body);
  backdrop.appendChild(dialog);
  let closed = false;
  const handle = {
    el: dialog,
    body,
    head,
    closable,
    close(reason) {
      if (closed) return;
      closed = true;
      backdrop.remove();
      if (onClose) onClose(reason);
    },
  };
  if (closable) {
    const x = shellButton("✕", "de-shell-dialog-x", () => handle.close("dismiss"), "Close (Escape)");
    x.setAttribute("aria-label", "Close");
    head.appendChild(x);
    backdrop.addEventListener("mousedown", (event) => {
      if (event.target === backdrop) handle.close("dismiss");
    });
  }
  layer.appendChild(backdrop);
  setTimeout(() => dialog.focus({ preventScroll: true }), 0);
  return handle;
}

function shellConflictFields(table) {
  if (table === "seizures") {
    return [["onset_frame", "Onset", "time"], ["offset_frame", "Offset", "time"], ["seizure_type", "Type"],
      ["awareness", "Awareness"], ["lateralization", "Lateralization"], ["localization", "Localization"]];
  }
  if (table === "suggestions") return [["decision", "Decision"], ["region", "Region"], ["label", "Label"]];
  if (table === "keypoints") {
    return [["joint", "Joint"], ["frame_index", "Frame", "time"], ["u_px", "Column (px)", "px"], ["v_px", "Row (px)", "px"],
      ["z_m", "Depth (m)", "m"]];
  }
  return [["region", "Region"], ["label", "Label"], ["laterality", "Laterality"], ["start_frame", "Start", "time"],
    ["end_frame", "End", "time"]];
}

/** What the failed edit wanted: {table, id, changes (null for a delete), deleted}. */
function shellConflictIntent(request, current) {
  const op = request && request.op;
  const args = (request && request.args) || {};
  const table = /seizure/.test(op || "") ? "seizures" : /suggestion/.test(op || "") ? "suggestions"
    : /keypoint/.test(op || "") ? "keypoints" : "mois";
  const id = args.id ?? (current && current.id);
  if (op === "move_keypoint") return { table, id, changes: { u_px: args.u_px, v_px: args.v_px }, deleted: false };
  if (/^delete_/.test(op || "")) return { table, id, changes: { deleted: true }, deleted: true };
  if (op === "accept_suggestion") return { table, id, changes: { decision: "accepted" }, deleted: false };
  if (op === "reject_suggestion") return { table, id, changes: { decision: "rejected" }, deleted: false };
  return { table, id, changes: { ...(args.changes || {}) }, deleted: false };
}

function shellShowConflict(ctx, shell, { request, error }) {
  const current = error.current || {};
  const intent = shellConflictIntent(request, current);
  const tables = { moi: "mois", suggestion: "suggestions", seizure: "seizures", keypoint: "keypoints" };
  if (tables[error.table]) intent.table = tables[error.table];
  const held = ctx.labels[intent.table] ? ctx.labels[intent.table].get(intent.id) : null;
  const mine = { ...(held || current), ...intent.changes };
  const fps = ctx.state.recording ? ctx.state.recording.fps : 30;
  const user = ctx.model.get("user") || {};
  const fields = shellConflictFields(intent.table);
  const differs = intent.deleted !== Boolean(current.deleted)
    || fields.some(([field]) => (mine[field] ?? null) !== (current[field] ?? null));
  if (!differs) {
    // The stored row already says what this edit wanted (e.g. the same change sent twice): keep it.
    ctx.edit("resolve_conflict", { table: intent.table, id: intent.id, choice: "theirs", changes: {} })
      .catch((err) => ctx.notify("error", err.message));
    return null;
  }
  const dialog = shell.dialog("Someone else changed this label", { className: "de-shell-conflict" });
  dialog.body.appendChild(utilEl("p", "", error.message
    || "It was changed by someone else after you loaded it. Choose which version to keep."));
  const grid = utilEl("div", "de-shell-compare");
  const show = (value, kind) => (value === null || value === undefined || value === "" ? "—"
    : kind === "time" ? `${utilFormatTime(value, fps)}  #${value}` : kind === "px" ? Number(value).toFixed(1)
      : kind === "m" ? Number(value).toFixed(3) : String(value));
  const column = (titleText, who, row, deleted, other) => {
    const col = utilEl("div", "de-shell-compare-col");
    col.append(utilEl("h4", "", titleText), utilEl("div", "de-shell-muted", who));
    // divs, not dl/dt/dd: JupyterLab's output area styles those (dt floats at 20% width).
    const dl = utilEl("div", "de-shell-kv");
    if (deleted) dl.appendChild(utilEl("div", "de-shell-deleted", "Deleted"));
    for (const [field, label, kind] of fields) {
      const differs = show(row[field], kind) !== show(other[field], kind);
      dl.append(utilEl("div", "de-shell-k", label), utilEl("div", differs ? "de-shell-v de-shell-diff" : "de-shell-v",
        show(row[field], kind)));
    }
    col.appendChild(dl);
    return col;
  };
  const when = current.updated_at || current.modified_at;
  const whenDate = when ? new Date(when) : null;
  const whenText = whenDate && !Number.isNaN(whenDate.getTime())
    ? `${whenDate.toLocaleDateString()} ${whenDate.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`
    : when;
  const storedWho = [current.updated_by ? `changed by ${current.updated_by}` : current.author, whenText]
    .filter(Boolean).join(" · ") || "stored in the database";
  const theirsDeleted = Boolean(current.deleted || current.deleted_at);
  grid.append(
    column("Your version", `${user.username || "you"} · just now`, mine, intent.deleted, current),
    column("Stored version", storedWho, current, theirsDeleted, mine),
  );
  dialog.body.appendChild(grid);
  const actions = utilEl("div", "de-shell-dialog-actions");
  const resolve = (choice) => {
    dialog.close("chosen");
    ctx.edit("resolve_conflict", { table: intent.table, id: intent.id, choice, changes: choice === "mine" ? intent.changes : {} })
      .then((reply) => {
        if (reply && reply.ok) ctx.notify("info", choice === "mine" ? "Your version was saved." : "The stored version was kept.");
      })
      .catch((err) => ctx.notify("error", err.message));
  };
  const later = shellButton("Decide later", "de-shell-btn--ghost", () => dialog.close("later"));
  const theirs = shellButton("Keep stored version", "", () => resolve("theirs"));
  const keepMine = shellButton("Keep my version", "de-shell-btn--primary", () => resolve("mine"));
  actions.append(later, utilEl("div", "de-shell-grow"), theirs, keepMine);
  dialog.body.appendChild(actions);
  setTimeout(() => keepMine.focus(), 0);
  return dialog;
}

/** Groups for the help overlay: the `shortcut_groups` trait, else one group of every action. */
function shellHelpGroups(model) {
  const shortcuts = model.get("shortcuts") || {};
  const groups = Array.isArray(model.get("shortcut_groups")) ? model.get("shortcut_groups") : [];
  const seen = new Set();
  const result = [];
  for (const group of groups) {
    const items = [];
    for (const item of group.actions || []) {
      const action = typeof item === "string" ? item : item.action;
      if (!(action in shortcuts)) continue;
      seen.add(action);
      items.push({ action, description: (item && item.description) || shellHumanize(action), keys: shortcuts[action] });
    }
    if (items.length) result.push({ name: group.name || group.title || "Shortcuts", items });
  }
  const rest = Object.keys(shortcuts).filter((a) => !seen.has(a));
  if (rest.length) {
    result.push({ name: groups.length ? "Other" : "Shortcuts",
      items: rest.map((action) => ({ action, description: shellHumanize(action), keys: shortcuts[action] })) });
  }
  return result;
}

function shellShowHelp(ctx, shell) {
  const dialog = shell.dialog("Keyboard shortcuts", { className: "de-shell-help" });
  dialog.body.appendChild(utilEl("p", "de-shell-muted",
    "Click the app once so it has the keyboard. Shortcuts do not fire while you type in a field; Escape leaves it. "
    + "Your own map lives in ~/.deepepil/shortcuts.json."));
  const cols = utilEl("div", "de-shell-help-grid");
  for (const group of shellHelpGroups(ctx.model)) {
    const box = utilEl("section", "de-shell-help-group");
    box.appendChild(utilEl("h4", "", group.name));
    const list = utilEl("div", "de-shell-kv");
    for (const item of group.items) {
      const name = utilEl("div", "de-shell-k", item.description);
      name.title = item.action;
      const keys = utilEl("div", "de-shell-v");
      keys.appendChild(shellKeyCaps(item.keys));
      list.append(name, keys);
    }
    box.appendChild(list);
    cols.appendChild(box);
  }
  dialog.body.appendChild(cols);
  return dialog;
}

function shellCreateLoading(model) {
  const el = utilEl("div", "de-shell-loading");
  const card = utilEl("div", "de-shell-loading-card");
  const message = utilEl("div", "de-shell-loading-msg");
  const bar = utilEl("div", "de-shell-progress");
  const fill = utilEl("div", "de-shell-progress-fill");
  bar.appendChild(fill);
  bar.setAttribute("role", "progressbar");
  const percent = utilEl("div", "de-shell-muted");
  card.append(message, bar, percent);
  el.appendChild(card);
  function draw() {
    const loading = model.get("loading") || {};
    el.hidden = !loading.active;
    message.textContent = loading.message || "Loading…";
    const known = typeof loading.fraction === "number" && Number.isFinite(loading.fraction);
    bar.classList.toggle("de-shell-progress--indeterminate", !known);
    fill.style.width = known ? `${Math.round(utilClamp(loading.fraction, 0, 1) * 100)}%` : "";
    percent.textContent = known ? `${Math.round(utilClamp(loading.fraction, 0, 1) * 100)} %` : "";
    if (known) bar.setAttribute("aria-valuenow", String(Math.round(loading.fraction * 100)));
    else bar.removeAttribute("aria-valuenow");
  }
  model.on("change:loading", draw);
  draw();
  return { el, destroy: () => model.off("change:loading", draw) };
}

