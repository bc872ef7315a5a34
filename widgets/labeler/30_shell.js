// 30_shell.js: everything around the player and the timeline. This file: shared form helpers and
// shellCreate (the screens, overlays and app actions, built once by 90_main.js). The landing screen
// and the patient form are in 31_shell_screens.js, the labeling screen's menu strip and side panel in
// 32_shell_labeling.js, toasts, dialogs (conflict, help, fatal) and the loading overlay in
// 33_shell_overlays.js.

const SHELL_STATUS_ORDER = { in_progress: 0, new: 1, done: 2 };
const SHELL_STATUS_TEXT = { new: "New", in_progress: "In progress", done: "Done" };
const SHELL_SEX = ["female", "male", "other", "unknown"];
const SHELL_EPILEPSY_TYPES = ["focal", "generalized", "combined generalized and focal", "unknown"];
const SHELL_LOBES = ["frontal", "temporal", "parietal", "occipital", "insular", "multifocal", "unknown"];
const SHELL_KEY_GLYPHS = { ArrowLeft: "←", ArrowRight: "→", ArrowUp: "↑", ArrowDown: "↓" };
const SHELL_TOAST_MS = { info: 4000, warning: 8000 };

function shellButton(text, className, onClick, title) {
  const button = utilEl("button", `de-shell-btn ${className || ""}`.trim(), text);
  button.type = "button";
  if (title) button.title = title;
  if (onClick) button.addEventListener("click", onClick);
  return button;
}

/** A <select> of `options` (strings, or [group, [strings]] pairs); "" stands for no value. */
function shellSelect(options, value, { empty = "—", name } = {}) {
  const select = utilEl("select", "de-shell-input");
  if (name) select.name = name;
  if (empty !== null) select.appendChild(new Option(empty, ""));
  const add = (parent, option, text) => parent.appendChild(new Option(text || option, option));
  for (const entry of options || []) {
    if (Array.isArray(entry)) {
      const group = utilEl("optgroup");
      group.label = entry[0];
      for (const option of entry[1]) add(group, option.value || option, option.text);
      select.appendChild(group);
    } else {
      add(select, entry);
    }
  }
  const known = [...select.options].some((o) => o.value === (value ?? ""));
  if (!known && value) select.appendChild(new Option(`${value} (retired)`, value));
  select.value = value ?? "";
  return select;
}

/** A labelled form row: <label>text</label> control, and a message line under it. */
function shellField(text, control, hint) {
  const row = utilEl("div", "de-shell-field");
  const label = utilEl("label", "de-shell-label", text);
  const id = `de-f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  label.htmlFor = id;
  row.append(label, control);
  if (hint) row.appendChild(utilEl("div", "de-shell-hint", hint));
  const message = utilEl("div", "de-shell-field-error");
  message.setAttribute("role", "alert");
  row.appendChild(message);
  row.setError = (text2) => {
    message.textContent = text2 || "";
    row.classList.toggle("de-shell-field--invalid", Boolean(text2));
  };
  return row;
}

/**
 * ILAE 2017 seizure types grouped by their prefix ("focal aware: automatisms" -> group "Focal
 * aware"). Options keep the full type: a closed select shows only the option's text.
 */
function shellSeizureTypeOptions(types) {
  const basic = [];
  const groups = new Map();
  for (const type of types || []) {
    const at = type.indexOf(": ");
    if (at < 0) {
      basic.push(type);
      continue;
    }
    const prefix = type.slice(0, at);
    const title = prefix.charAt(0).toUpperCase() + prefix.slice(1);
    if (!groups.has(title)) groups.set(title, []);
    groups.get(title).push({ value: type, text: type });
  }
  return [["Basic types", basic.map((t) => ({ value: t, text: t }))], ...groups.entries()];
}

function shellHumanize(action) {
  const text = String(action).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function shellKeyCaps(keys) {
  const box = utilEl("span", "de-shell-keys");
  const list = (Array.isArray(keys) ? keys : [keys]).filter(Boolean);
  if (!list.length) box.appendChild(utilEl("span", "de-shell-muted", "not set"));
  list.forEach((key, i) => {
    if (i) box.appendChild(utilEl("span", "de-shell-muted", " or "));
    const parts = key === "+" ? ["+"] : key.split("+").map((p, j, all) => (p === "" && j === all.length - 1 ? "+" : p));
    const combo = utilEl("span", "de-shell-combo");
    parts.filter((p) => p !== "").forEach((part, j) => {
      if (j) combo.appendChild(document.createTextNode("+"));
      combo.appendChild(utilEl("kbd", "de-shell-kbd", SHELL_KEY_GLYPHS[part] || part));
    });
    box.appendChild(combo);
  });
  return box;
}

// ---------------------------------------------------------------------------------------------
// The shell: built once by 90_main.js

/**
 * Build the shell inside `root`: screens, overlays, and the app-level actions (help, undo,
 * redo, close_recording, escape, focus_search). Returns the handle
 * 90_main.js uses: showScreen(name), mountParts(parts), notify(level, text), modalOpen(), destroy().
 */
function shellCreate(ctx, root) {
  const model = ctx.model;
  const layer = utilEl("div", "de-shell-layer");
  const dialogs = [];
  /** Dialogs sit in the part of the app on screen (the app may be taller than the notebook's view). */
  function placeLayer() {
    if (!dialogs.length) {
      layer.style.top = "";
      layer.style.height = "";
      return;
    }
    const { top, bottom, box } = shellVisibleRect(root);
    const height = Math.max(Math.min(320, box.height), bottom - top);
    const at = utilClamp(top - box.top, 0, Math.max(0, box.height - height));
    layer.style.top = `${Math.round(at)}px`;
    layer.style.height = `${Math.round(height)}px`;
  }
  const toasts = shellCreateToasts(root, placeLayer);
  const loading = shellCreateLoading(model);
  let helpDialog = null;

  const shell = {
    dialog(titleText, options = {}) {
      const handle = shellDialog(layer, titleText, {
        ...options,
        onClose: (reason) => {
          const at = dialogs.indexOf(handle);
          if (at >= 0) dialogs.splice(at, 1);
          if (options.onClose) options.onClose(reason);
          if (!dialogs.length) root.focus({ preventScroll: true });
        },
      });
      dialogs.push(handle);
      placeLayer();
      return handle;
    },
    notify(level, text, options) {
      toasts.show(["info", "warning", "error"].includes(level) ? level : "info", String(text), options || {});
    },
    showFatal(titleText, message) {
      toasts.drop(message);
      const dialog = shell.dialog(titleText, { className: "de-shell-fatal" });
      dialog.body.appendChild(utilEl("p", "de-shell-fatal-msg", message));
      dialog.body.appendChild(utilEl("p", "de-shell-muted",
        "Nothing was changed. If the problem persists, send this message to your DeepEpil administrator."));
      const actions = utilEl("div", "de-shell-dialog-actions");
      actions.append(utilEl("div", "de-shell-grow"), shellButton("Back to recordings", "de-shell-btn--primary", () => {
        dialog.close("ok");
        shell.backToLanding();
      }));
      dialog.body.appendChild(actions);
      return dialog;
    },
    modalOpen() {
      return dialogs.length > 0;
    },
    openPatientForm(patient) {
      shell.showScreen("patient");
      patientForm.show(patient);
      model.set("screen", "patient");
      model.save_changes();
    },
    leavePatientForm() {
      const next = ctx.state.recording ? "labeling" : "landing";
      shell.showScreen(next);
      model.set("screen", next);
      model.save_changes();
    },
    backToLanding() {
      if (ctx.state.recording) {
        ctx.actions.close_recording();
        return;
      }
      shell.showScreen("landing");
      model.set("screen", "landing");
      model.save_changes();
    },
  };

  const landing = shellCreateLanding(ctx, shell);
  const patientForm = shellCreatePatientForm(ctx, shell);
  const labeling = shellCreateLabeling(ctx, shell);
  const screens = { landing: landing.el, patient: patientForm.el, labeling: labeling.el };
  root.append(landing.el, patientForm.el, labeling.el, loading.el, layer, toasts.el);
  let screen = null;

  shell.showScreen = (name) => {
    const next = screens[name] ? name : "landing";
    if (next === "patient" && next !== screen) patientForm.show(undefined);
    const entering = next === "labeling" && screen !== "labeling";
    screen = next;
    for (const [key, el] of Object.entries(screens)) el.hidden = key !== next;
    root.dataset.screen = next;
    if (entering) {
      labeling.fit();
      requestAnimationFrame(() => {
        labeling.fit();
        labeling.reveal();
      });
    }
  };
  shell.mountParts = (parts) => labeling.mount(parts);

  Object.assign(ctx.actions, {
    help() {
      if (helpDialog) {
        helpDialog.close("toggle");
        return;
      }
      helpDialog = shellShowHelp(ctx, shell);
      const close = helpDialog.close;
      helpDialog.close = (reason) => {
        helpDialog = null;
        close(reason);
      };
    },
    undo() {
      if (!model.get("can_undo")) return ctx.notify("info", "Nothing to undo.");
      return ctx.edit("undo", {});
    },
    redo() {
      if (!model.get("can_redo")) return ctx.notify("info", "Nothing to redo.");
      return ctx.edit("redo", {});
    },
    close_recording() {
      if (!ctx.state.recording && screen === "labeling") {
        shell.showScreen("landing");
      }
      return ctx.request({ type: "close" }).then(({ content }) => {
        if (!content || content.ok !== false) return;
        const error = content.error || {};
        if (error.kind !== "offline") {
          ctx.notify("error", error.message || "The recording could not be closed.");
          return;
        }
        const dialog = shell.dialog("Changes not saved yet");
        dialog.body.appendChild(utilEl("p", "", error.message));
        const actions = utilEl("div", "de-shell-dialog-actions");
        const discard = shellButton("Close and discard them", "de-shell-btn--danger", () => {
          dialog.close("force");
          ctx.request({ type: "close", force: true }).catch((err) => ctx.notify("error", err.message));
        });
        const stay = shellButton("Stay on the recording", "de-shell-btn--primary", () => dialog.close("stay"));
        actions.append(utilEl("div", "de-shell-grow"), discard, stay);
        dialog.body.appendChild(actions);
        setTimeout(() => stay.focus(), 0);
      });
    },
    escape() {
      if (dialogs.length) {
        const top = dialogs[dialogs.length - 1];
        if (top.closable) top.close("escape");
        return;
      }
      const payload = { handled: false };
      ctx.bus.emit("escape", payload);
      if (!payload.handled && ctx.state.selection) ctx.select(null);
    },
    focus_search() {
      if (screen === "landing") landing.focusSearch();
    },
  });

  const offConflict = ctx.bus.on("conflict", (info) => shellShowConflict(ctx, shell, info));
  // One popup per connection incident: it goes when the database answers again.
  const onStatus = () => {
    const status = model.get("status") || {};
    // not on "saving": that update can arrive after the popup (custom messages may overtake trait updates)
    if (!["offline", "saving"].includes(status.state)) toasts.dismiss("offline");
  };
  model.on("change:status", onStatus);
  const onFocus = () => labeling.menu.el.querySelector(".de-shell-focus-hint").textContent = "⌨ Keyboard active";
  const onBlur = () => setTimeout(() => {
    if (!root.contains(document.activeElement)) {
      labeling.menu.el.querySelector(".de-shell-focus-hint").textContent = "Click here for shortcuts";
    }
  }, 0);
  root.addEventListener("focusin", onFocus);
  root.addEventListener("focusout", onBlur);
  onBlur();

  shell.destroy = () => {
    offConflict();
    model.off("change:status", onStatus);
    toasts.destroy();
    root.removeEventListener("focusin", onFocus);
    root.removeEventListener("focusout", onBlur);
    for (const dialog of [...dialogs]) dialog.close("destroy");
    landing.destroy();
    patientForm.destroy();
    labeling.destroy();
    loading.destroy();
  };
  return shell;
}
