// 31_shell_screens.js: the landing screen (recordings list) and the pseudonymous patient form.

function shellCreateLanding(ctx, shell) {
  const model = ctx.model;
  const view = { filter: "all", query: "", sortKey: "status", sortDir: 1, opening: null };
  const el = utilEl("section", "de-shell-screen de-shell-landing");

  const header = utilEl("header", "de-shell-header");
  const brand = utilEl("div", "de-shell-brand");
  brand.append(utilEl("span", "de-shell-logo", "DE"), utilEl("span", "de-shell-title", "DeepEpil labeling"));
  const userBox = utilEl("div", "de-shell-user");
  header.append(brand, userBox);

  const toolbar = utilEl("div", "de-shell-toolbar");
  const search = utilEl("input", "de-shell-input de-shell-search");
  search.type = "search";
  search.placeholder = "Search patient code or recording…";
  search.setAttribute("aria-label", "Search by patient code");
  const filters = utilEl("div", "de-shell-segmented");
  filters.setAttribute("role", "tablist");
  const filterButtons = {};
  for (const key of ["all", "new", "in_progress", "done"]) {
    const button = shellButton("", "de-shell-seg", () => {
      view.filter = key;
      draw();
    });
    button.setAttribute("role", "tab");
    filterButtons[key] = button;
    filters.appendChild(button);
  }
  const spacer = utilEl("div", "de-shell-grow");
  const refresh = shellButton("Refresh", "de-shell-btn--ghost", () => {
    ctx.request({ type: "refresh" }).catch((err) => ctx.notify("error", err.message));
  }, "Reload the list of recordings");
  const newPatient = shellButton("New patient", "de-shell-btn--primary", () => shell.openPatientForm(null));
  toolbar.append(search, filters, spacer, refresh, newPatient);

  const tableWrap = utilEl("div", "de-shell-table-wrap");
  const table = utilEl("table", "de-shell-table");
  const thead = utilEl("thead");
  const headRow = utilEl("tr");
  const columns = [
    ["patient_code", "Patient"], ["name", "Recording"], ["clinic", "Clinic"],
    ["duration_seconds", "Duration", "num"], ["streams", "Streams"], ["n_mois", "MOIs", "num"], ["status", "Status"],
  ];
  const headCells = {};
  for (const [key, text, kind] of columns) {
    const th = utilEl("th", kind === "num" ? "de-shell-num" : "");
    const button = shellButton(text, "de-shell-sort", () => {
      view.sortDir = view.sortKey === key ? -view.sortDir : 1;
      view.sortKey = key;
      draw();
    }, `Sort by ${text.toLowerCase()}`);
    th.appendChild(button);
    th.scope = "col";
    headCells[key] = th;
    headRow.appendChild(th);
  }
  thead.appendChild(headRow);
  const tbody = utilEl("tbody");
  table.append(thead, tbody);
  const empty = utilEl("div", "de-shell-empty");
  tableWrap.append(table, empty);
  const footer = utilEl("div", "de-shell-footnote",
    "Patients are shown by pseudonymous code only. Click a recording or press Enter to open it.");
  el.append(header, toolbar, tableWrap, footer);

  function sortValue(row, key) {
    if (key === "status") return SHELL_STATUS_ORDER[row.status] ?? 9;
    if (key === "streams") return (row.streams || []).join(",");
    const value = row[key];
    return typeof value === "string" ? value.toLowerCase() : (value ?? -Infinity);
  }

  function open(row, tr) {
    if (view.opening !== null) return;
    view.opening = row.id;
    tr.classList.add("de-shell-row--opening");
    tr.lastChild.firstChild.textContent = "Opening…";
    ctx.request({ type: "open", recording_id: row.id })
      .then(({ content }) => {
        if (!content.ok) {
          shell.showFatal(`Could not open ${row.name}`, content.error?.message || content.error || "The recording did not open.");
        }
      })
      .catch((err) => shell.showFatal(`Could not open ${row.name}`, err.message))
      .finally(() => {
        view.opening = null;
        draw();
      });
  }

  function draw() {
    const user = model.get("user") || {};
    userBox.replaceChildren();
    if (user.username) {
      userBox.append(utilEl("span", "de-shell-avatar", user.username.slice(0, 1).toUpperCase()),
        utilEl("span", "", user.username),
        utilEl("span", "de-shell-muted", [user.role, user.clinic].filter(Boolean).join(" · ")));
    }
    const rows = model.get("recordings") || [];
    const counts = { all: rows.length, new: 0, in_progress: 0, done: 0 };
    for (const row of rows) counts[row.status] = (counts[row.status] || 0) + 1;
    for (const [key, button] of Object.entries(filterButtons)) {
      button.replaceChildren(utilEl("span", "", key === "all" ? "All" : SHELL_STATUS_TEXT[key]),
        utilEl("span", "de-shell-count", String(counts[key] || 0)));
      button.classList.toggle("de-shell-seg--on", view.filter === key);
      button.setAttribute("aria-selected", String(view.filter === key));
    }
    const query = view.query.trim().toLowerCase();
    const shown = rows.filter((row) => (view.filter === "all" || row.status === view.filter)
      && (!query || String(row.patient_code || "").toLowerCase().includes(query)
        || String(row.name || "").toLowerCase().includes(query)));
    shown.sort((a, b) => {
      const x = sortValue(a, view.sortKey);
      const y = sortValue(b, view.sortKey);
      if (x < y) return -view.sortDir;
      if (x > y) return view.sortDir;
      return String(a.name).localeCompare(String(b.name));
    });
    for (const [key, th] of Object.entries(headCells)) {
      th.setAttribute("aria-sort", view.sortKey === key ? (view.sortDir > 0 ? "ascending" : "descending") : "none");
    }
    tbody.replaceChildren();
    for (const row of shown) {
      const tr = utilEl("tr", "de-shell-row");
      tr.tabIndex = 0;
      tr.dataset.recordingId = row.id;
      tr.append(
        utilEl("td", "de-shell-code", row.patient_code),
        utilEl("td", "de-shell-strong", row.name),
        utilEl("td", "", row.clinic),
        utilEl("td", "de-shell-num", utilFormatDuration(row.duration_seconds)),
        utilEl("td", "de-shell-muted", (row.streams || []).join(" · ")),
        utilEl("td", "de-shell-num", row.n_mois ?? 0),
      );
      const statusCell = utilEl("td");
      statusCell.appendChild(utilEl("span", `de-shell-badge de-shell-badge--${row.status}`,
        view.opening === row.id ? "Opening…" : (SHELL_STATUS_TEXT[row.status] || row.status)));
      tr.appendChild(statusCell);
      if (view.opening === row.id) tr.classList.add("de-shell-row--opening");
      tr.addEventListener("click", () => open(row, tr));
      tr.addEventListener("keydown", (event) => {
        const name = utilKeyName(event);
        let next = null;
        if (name === "Enter") open(row, tr);
        else if (name === "ArrowDown") next = tr.nextElementSibling;
        else if (name === "ArrowUp") next = tr.previousElementSibling || search;
        else return;
        event.preventDefault();
        event.stopPropagation();
        if (next) next.focus();
      });
      tbody.appendChild(tr);
    }
    empty.hidden = shown.length > 0;
    if (!rows.length) {
      empty.textContent = "No recordings to label yet. They appear here once an administrator ingests them for your clinic.";
    } else if (!shown.length) {
      empty.textContent = query ? `No recording matches “${view.query.trim()}”.` : "No recording has this status.";
    }
  }

  search.addEventListener("input", () => {
    view.query = search.value;
    draw();
  });
  search.addEventListener("keydown", (event) => {
    if (utilKeyName(event) === "ArrowDown" && tbody.firstChild) {
      event.preventDefault();
      event.stopPropagation();
      tbody.firstChild.focus();
    } else if (utilKeyName(event) === "Enter" && tbody.children.length === 1) {
      event.preventDefault();
      tbody.firstChild.click();
    }
  });
  model.on("change:recordings", draw);
  model.on("change:user", draw);
  draw();
  return {
    el,
    focusSearch() {
      search.focus();
      search.select();
    },
    destroy() {
      model.off("change:recordings", draw);
      model.off("change:user", draw);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Patient form (pseudonymous: clinical fields only)

function shellCreatePatientForm(ctx, shell) {
  const model = ctx.model;
  const el = utilEl("section", "de-shell-screen de-shell-patient");
  let patient = null; // {id?, code?, fields}
  let rows = {};

  function vocab() {
    return model.get("vocabulary") || {};
  }

  function build() {
    const v = vocab();
    const fields = (patient && patient.fields) || {};
    const header = utilEl("header", "de-shell-header");
    const back = shellButton(ctx.state.recording ? "← Back to the recording" : "← Recordings", "de-shell-btn--ghost",
      () => shell.leavePatientForm());
    header.append(back, utilEl("span", "de-shell-title", patient && patient.id ? "Edit patient" : "New patient"));

    const card = utilEl("form", "de-shell-card de-shell-form");
    card.noValidate = true;
    const codeBox = utilEl("div", "de-shell-codebox");
    codeBox.append(utilEl("div", "de-shell-label", "Patient code"),
      patient && patient.code ? utilEl("div", "de-shell-code de-shell-code--big", patient.code)
        : utilEl("div", "de-shell-code-pending", "Assigned when you save"),
      utilEl("div", "de-shell-hint", "Generated by the server. It is the only identifier stored."));
    const privacy = utilEl("div", "de-shell-note");
    privacy.append(utilEl("strong", "", "Pseudonymous record. "),
      document.createTextNode("Do not enter names, birth dates, hospital numbers or anything else that "
        + "identifies the patient, not even in the notes. Only the clinical fields below are stored."));

    const sex = shellSelect(v.sex || SHELL_SEX, fields.sex, { name: "sex" });
    const age = utilEl("input", "de-shell-input");
    Object.assign(age, { type: "number", min: "0", max: "129", step: "1", name: "age_at_recording_years", inputMode: "numeric" });
    age.value = fields.age_at_recording_years ?? "";
    const epilepsy = utilEl("input", "de-shell-input");
    epilepsy.name = "epilepsy_type";
    epilepsy.value = fields.epilepsy_type ?? "";
    epilepsy.placeholder = "focal, generalized, combined, unknown";
    const epilepsyList = utilEl("datalist");
    epilepsyList.id = `de-dl-${Math.random().toString(36).slice(2, 9)}`;
    for (const t of v.epilepsy_type || SHELL_EPILEPSY_TYPES) epilepsyList.appendChild(new Option(t, t));
    epilepsy.setAttribute("list", epilepsyList.id);
    const localization = utilEl("input", "de-shell-input");
    localization.name = "localization_hypothesis";
    localization.value = fields.localization_hypothesis ?? "";
    const locList = utilEl("datalist");
    locList.id = `de-dl-${Math.random().toString(36).slice(2, 9)}`;
    for (const t of [...(v.localization || []), ...SHELL_LOBES]) locList.appendChild(new Option(t, t));
    localization.setAttribute("list", locList.id);
    const lateralization = shellSelect([...(v.laterality || ["left", "right", "bilateral"]), "unknown"],
      fields.lateralization_hypothesis, { name: "lateralization_hypothesis" });
    const imaging = utilEl("textarea", "de-shell-input");
    imaging.name = "imaging_finding";
    imaging.rows = 2;
    imaging.value = fields.imaging_finding ?? "";
    imaging.placeholder = "e.g. left hippocampal sclerosis on 3T MRI";
    const notes = utilEl("textarea", "de-shell-input");
    notes.name = "notes";
    notes.rows = 3;
    notes.value = fields.notes ?? "";
    notes.placeholder = "Clinical notes only: no names or dates of birth";

    rows = {
      sex: shellField("Sex", sex),
      age_at_recording_years: shellField("Age at recording (years)", age),
      epilepsy_type: shellField("Epilepsy type (ILAE 2017)", epilepsy),
      localization_hypothesis: shellField("Localization hypothesis", localization),
      lateralization_hypothesis: shellField("Lateralization hypothesis", lateralization),
      imaging_finding: shellField("Imaging finding", imaging),
      notes: shellField("Notes", notes),
    };
    const grid = utilEl("div", "de-shell-form-grid");
    grid.append(rows.sex, rows.age_at_recording_years, rows.epilepsy_type, rows.lateralization_hypothesis,
      rows.localization_hypothesis);
    const wide = utilEl("div", "de-shell-form-wide");
    wide.append(rows.imaging_finding, rows.notes);
    const formError = utilEl("div", "de-shell-form-error");
    formError.setAttribute("role", "alert");
    const actions = utilEl("div", "de-shell-form-actions");
    const cancel = shellButton("Cancel", "de-shell-btn--ghost", () => shell.leavePatientForm());
    const save = shellButton(patient && patient.id ? "Save changes" : "Create patient", "de-shell-btn--primary");
    save.type = "submit";
    actions.append(cancel, save);
    card.append(codeBox, privacy, grid, wide, epilepsyList, locList, formError, actions);
    card.addEventListener("submit", (event) => {
      event.preventDefault();
      submit(card, formError, save);
    });
    el.replaceChildren(header, card);
  }

  function collect(form) {
    const fields = {};
    for (const name of Object.keys(rows)) {
      const control = form.elements[name];
      const value = control.value.trim();
      fields[name] = value === "" ? null : value;
    }
    return fields;
  }

  function showErrors(formError, errors, message) {
    for (const [name, row] of Object.entries(rows)) row.setError(errors && errors[name]);
    formError.textContent = message || "";
  }

  function submit(form, formError, save) {
    const fields = collect(form);
    const errors = {};
    if (fields.age_at_recording_years !== null) {
      const age = Number(fields.age_at_recording_years);
      if (!Number.isInteger(age) || age < 0 || age > 129) errors.age_at_recording_years = "Whole years from 0 to 129.";
      else fields.age_at_recording_years = age;
    }
    if (Object.keys(errors).length) {
      showErrors(formError, errors, "Please correct the marked field.");
      return;
    }
    showErrors(formError, {}, "");
    save.disabled = true;
    save.textContent = "Saving…";
    const op = patient && patient.id ? "update" : "create";
    const content = { type: "patient", op, fields };
    if (patient && patient.id) Object.assign(content, { id: patient.id, version: patient.version });
    ctx.request(content)
      .then(({ content: reply }) => {
        if (reply.ok) {
          const code = reply.patient && reply.patient.code;
          ctx.notify("info", op === "create" ? `Patient ${code || ""} created.` : `Patient ${code || ""} saved.`);
          shell.leavePatientForm();
          return;
        }
        const error = reply.error || {};
        showErrors(formError, error.fields, error.message || "The patient was not saved.");
      })
      .catch((err) => showErrors(formError, {}, err.message))
      .finally(() => {
        save.disabled = false;
        save.textContent = patient && patient.id ? "Save changes" : "Create patient";
      });
  }

  function onPatient() {
    patient = model.get("patient") || patient;
    if (el.isConnected && !el.hidden) build();
  }
  model.on("change:patient", onPatient);
  return {
    el,
    show(given) {
      patient = given !== undefined ? given : (model.get("patient") || null);
      build();
      const first = el.querySelector("select, input");
      if (first) setTimeout(() => first.focus({ preventScroll: true }), 0);
    },
    destroy() {
      model.off("change:patient", onPatient);
    },
  };
}

