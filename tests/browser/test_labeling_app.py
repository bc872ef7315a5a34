"""The clinician labeling app end to end: JupyterLab, the prepared notebook, headless Chromium, the label DB.

One JupyterLab server per module on its own SQLite label database (``lab`` fixture); the
clinician ``clinician`` of clinic North sees one recording (the other is South's) with one
pending model suggestion (:data:`_lab.SUGGESTION`). Each test opens the notebook afresh and
works on its own region of the timeline, so the tests do not depend on each other's rows.
Screenshots of every step go to ``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import pytest
from _app import HELP_ACTION, LabelingAppPage
from _lab import CLINICIAN, SUGGESTION, cell_count, open_lab

from deepepil.labels import connect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FPS = 30


@pytest.fixture
def app(lab, page) -> LabelingAppPage:
    """The app after opening JupyterLab and running notebooks/labeling.ipynb (landing screen)."""
    if "labeling.ipynb" not in lab.notebooks:
        pytest.fail("notebooks/labeling.ipynb is missing: it is the clinician's entry point")
    open_lab(page, lab.server)
    ui = LabelingAppPage(page)
    ui.start(lab.notebooks["labeling.ipynb"])
    return ui


def db_mois(lab, **filters):
    """The recording's MOIs in the database (a DataFrame, ordered by start frame)."""
    with connect(lab.db_url, user=CLINICIAN) as store:
        return store.mois(lab.ids.recording, **filters)


def time_text(frame: int, fps: int = FPS) -> str:
    """What the player shows for ``frame``: mm:ss.ff."""
    seconds, within = divmod(frame, fps)
    return f"{seconds // 60:02d}:{seconds % 60:02d}.{within:02d}"


def test_open_play_seek_label_and_accept(lab, app, page, shot):
    ui = app
    shot("landing")
    rows = ui.landing_rows()
    assert [r["id"] for r in rows] == [str(lab.ids.recording)], "a clinician sees only their clinic's recordings"
    assert rows[0]["patient"] == lab.ids.patient_code

    progress = ui.open_recording(lab.ids.recording)
    shot("opened")
    assert progress["seen"], "opening a recording shows a progress overlay"
    assert ui.frame_label() == ("00:00.00", 0)

    # play: the displayed frame advances; pause: it stops
    ui.focus()
    displayed_before = ui.counters()["displayed"].get("ir", 0)
    ui.press("Space")
    ui.wait_playing(True)
    page.wait_for_function("() => window.__deepepil_player.shown.ir >= 15", timeout=30_000)
    shot("playing")
    ui.press("Space")
    ui.wait_playing(False)
    counters = ui.counters()
    assert counters["displayed"]["ir"] - displayed_before >= 10, counters
    paused_at = ui.frame()
    assert paused_at >= 15
    page.wait_for_timeout(500)  # paused: half a second later the playhead has not moved
    assert ui.frame() == paused_at

    # seek: a click on the ruler lands on the frame under the pointer; keys step exactly
    ui.click_ruler_at(90.5)
    ui.wait_player_shows(90)
    ui.press("ArrowRight")
    ui.wait_player_shows(91)
    ui.press("Shift+ArrowRight")
    ui.wait_player_shows(121)
    assert ui.frame_label() == (time_text(121), 121)
    ui.press("Shift+ArrowLeft", "ArrowLeft", "ArrowLeft")
    ui.wait_player_shows(89)
    shot("seeked")

    # an MOI by keyboard: mark in at 20, mark out at 44 (the out frame is the last one inside)
    ui.mark_moi(20, 44, "left upper limb", "tonic posturing", "1", FPS)
    assert ui.status()["tone"] == "ok"
    shot("moi-created")
    made = db_mois(lab, region="left upper limb")
    assert len(made) == 1, made
    moi = made.iloc[0]
    assert (moi.start_frame, moi.end_frame) == (20, 45)
    assert (moi.label, moi.laterality, moi.author, moi.source) == ("tonic posturing", "left", CLINICIAN, "human")

    # resize it: drag its right edge from frame 45 to frame 60
    x_end, y = ui.moi_xy("left upper limb", 45)
    x_target, _ = ui.moi_xy("left upper limb", 60)
    page.mouse.move(x_end - 1, y)
    page.mouse.down()
    page.mouse.move(x_target, y, steps=12)
    shot("dragging")
    since = len(ui.status_log())
    page.mouse.up()
    ui.wait_saved(since)

    def resized():
        row = db_mois(lab, region="left upper limb").iloc[0]
        return row if row.version > moi.version else None

    row = _eventually(resized)
    assert row.start_frame == 20
    assert abs(row.end_frame - 60) <= 1, row.end_frame
    shot("moi-resized")

    # accept the model suggestion: click its bar, press the accept key
    page.mouse.click(*ui.suggestion_xy(SUGGESTION["region"], SUGGESTION["start_frame"] + 4))
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.de-shell-side .de-shell-panel-title'))"
        ".some(e => e.innerText.trim() === 'Suggestion')")
    shot("suggestion-selected")
    since = len(ui.status_log())
    ui.press("a")
    ui.wait_saved(since)
    accepted = _eventually(lambda: (lambda f: f if len(f) else None)(db_mois(lab, source="model")))
    assert len(accepted) == 1
    acc = accepted.iloc[0]
    assert (acc.start_frame, acc.end_frame, acc.region, acc.label) == (
        SUGGESTION["start_frame"], SUGGESTION["end_frame"], SUGGESTION["region"], SUGGESTION["label"])
    assert acc.author == CLINICIAN and acc.suggestion_id == lab.ids.suggestion
    with connect(lab.db_url, user=CLINICIAN) as store:
        assert store.suggestion(lab.ids.suggestion).decision == "accepted"
    shot("suggestion-accepted")


def _eventually(fn, timeout_seconds: float = 15.0, interval_seconds: float = 0.2):
    """``fn()`` until it returns something truthy (the database may lag the status by a poll)."""
    import time

    deadline = time.monotonic() + timeout_seconds
    while True:
        value = fn()
        if value is not None and (not hasattr(value, "__len__") or len(value)):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_seconds} s: {fn}")
        time.sleep(interval_seconds)


def test_jupyterlab_does_not_react_to_the_apps_keys(lab, app, page, shot):
    ui = app
    ui.open_recording(lab.ids.recording)
    n_cells = cell_count(page)
    ui.focus()
    # JupyterLab's command mode: a/b insert cells, d d deletes, x cuts, m makes markdown, z undoes
    for key in ("a", "b", "d", "d", "x", "m", "y", "z", "Space", "Space", "Enter", "Shift+Enter"):
        page.keyboard.press(key)
    ui.wait_playing(False)
    shot("after-keys")
    assert cell_count(page) == n_cells, "a key pressed in the app reached the notebook"
    assert page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.model.cells.get(0).type") == "code"
    assert ui.screen() == "labeling"
    assert page.evaluate("() => document.querySelector('.de-app').contains(document.activeElement)"), \
        "the app lost the keyboard"
    # the keys reached the app: "a" (accept suggestion) with nothing selected says so
    assert any("suggestion" in t.lower() for t in ui.toasts()), ui.toasts()


def test_help_overlay_lists_every_shortcut(lab, app, page, shot):
    from deepepil.ui.shortcuts import ACTION_DESCRIPTIONS, DEFAULT_SHORTCUTS

    ui = app
    ui.open_recording(lab.ids.recording)
    ui.focus()
    help_dialog = ui.open_help()
    shot("help")
    listed = help_dialog.locator(HELP_ACTION).evaluate_all(
        """names => names.map(n => ({action: n.title, text: n.innerText.trim(),
                                     keys: Array.from(n.nextElementSibling.querySelectorAll('.de-shell-combo'))
                                                .map(c => c.innerText.replace(/\\s+/g, ''))}))""")
    by_action = {item["action"]: item for item in listed}
    assert set(by_action) == set(DEFAULT_SHORTCUTS)
    for action, item in by_action.items():
        assert item["text"] == ACTION_DESCRIPTIONS[action]
    assert by_action["mark_in"]["keys"] == ["i"]
    assert by_action["play_pause"]["keys"] == ["Space"]
    assert by_action["second_forward"]["keys"] == ["Shift+→"]
    assert by_action["undo"]["keys"] == ["Ctrl+z"]
    ui.press("Escape")
    help_dialog.wait_for(state="detached")
    ui.press("?")  # the key toggles it
    help_dialog.wait_for()
    ui.press("?")
    help_dialog.wait_for(state="detached")


def test_undo_removes_the_last_moi_in_the_database(lab, app, page, shot):
    ui = app
    ui.open_recording(lab.ids.recording)
    ui.focus()
    ui.mark_moi(100, 109, "right lower limb", "clonic", "2", FPS)
    made = _eventually(lambda: db_mois(lab, region="right lower limb"))
    assert [(r.start_frame, r.end_frame, r.laterality) for r in made.itertuples()] == [(100, 110, "right")]
    assert (100, 110, "clonic") in ui.mois_by_keyboard()
    shot("before-undo")
    since = len(ui.status_log())
    ui.press("Control+z")
    ui.wait_saved(since)
    _eventually(lambda: True if db_mois(lab, region="right lower limb").empty else None)
    gone = db_mois(lab, region="right lower limb", include_deleted=True)
    assert list(gone.deleted) == [True]
    ui.wait_status("Saved", "All changes saved")
    shot("after-undo")
    assert (100, 110, "clonic") not in ui.mois_by_keyboard()


def test_reload_and_rerun_show_the_same_mois(lab, app, page, shot):
    ui = app
    ui.open_recording(lab.ids.recording)
    ui.focus()
    ui.mark_moi(130, 149, "trunk", "tonic posturing", "0", FPS)
    _eventually(lambda: db_mois(lab, region="trunk"))
    expected = sorted((int(r.start_frame), int(r.end_frame), r.label) for r in db_mois(lab).itertuples())
    assert (130, 150, "tonic posturing") in expected
    assert sorted(ui.mois_by_keyboard()) == expected

    page.reload()
    open_lab(page, lab.server)
    ui.start(lab.notebooks["labeling.ipynb"])
    ui.open_recording(lab.ids.recording)
    ui.focus()
    shot("after-reload")
    assert sorted(ui.mois_by_keyboard()) == expected
