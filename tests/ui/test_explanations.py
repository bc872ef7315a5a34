"""A suggestion's Grad-CAM in the labeling app: the kernel's side (deepepil.ui.explanations), on SQLite and PostgreSQL.

What the browser draws from it is tested in tests/browser/test_explain_browser.py.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepepil.ml.explain import Explanation
from deepepil.ui.explanations import FLOOR, MAX_ALPHA, heat_rgba

T, H, W = 4, 16, 20
FRAMES = [12, 14, 16, 18]   # a clip at 15 fps of a 30 fps recording
BOX = (100.0, 260.0, 150.0, 350.0)


def _explanation() -> Explanation:
    """Evidence only in the top-left quarter of the clip's grid, strongest on its third frame."""
    cam = np.zeros((T, H, W), np.float32)
    for k, peak in enumerate((0.4, 0.7, 1.0, 0.5)):
        cam[k, : H // 4, : W // 4] = peak
    return Explanation(cam=cam, frames=np.asarray(FRAMES), box_px=BOX, class_index=1, class_name="head version",
                       score=0.91)


@pytest.fixture
def explained(ui_db, open_label_store, tmp_path):
    """A suggestion of ``rec`` published with an explanation file: (suggestion id, file)."""
    path = _explanation().save(tmp_path / "explanations" / "moi-test-v2" / "s.npz")
    dan = open_label_store("dan")
    row = dan.add_suggestion(ui_db.rec, "head/face", "head version", 12, 20, 0.91, "moi-test:2", "left",
                             explanation_uri=str(path))
    return row.id, path


def reply_buffers(app, reply: dict) -> list:
    """The buffers sent with ``reply``."""
    return next(b for c, b in app.sent if c is reply)


def _rgba(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "RGBA"
    return np.asarray(image)


def test_the_app_sends_one_transparent_heat_map_per_clip_frame(make_app, ui_db, explained, ask):
    sid, _ = explained
    app = make_app("ann", recording_id=ui_db.rec)
    rows = {row["id"]: row for row in app.labels["suggestions"]}
    assert rows[sid]["has_explanation"] is True
    assert all(rows[other]["has_explanation"] is False for other in ui_db.suggestions)
    assert "explanation_uri" not in rows[sid]  # the server's path stays on the server

    reply = ask(app, {"type": "explanation", "suggestion_id": sid})
    assert reply["type"] == "explanation" and reply["ok"], reply
    assert reply["frames"] == FRAMES and reply["end_frame"] == 20
    assert reply["box_px"] == list(BOX)
    assert (reply["class_name"], reply["score"], reply["mime"]) == ("head version", 0.91, "image/png")
    assert (reply["width_px"], reply["height_px"]) == (W, H)
    images = [_rgba(png) for png in reply_buffers(app, reply)]
    assert [im.shape for im in images] == [(H, W, 4)] * T
    for k, peak in enumerate((0.4, 0.7, 1.0, 0.5)):
        alpha = images[k][..., 3].astype(int)
        assert alpha[H // 4:, :].max() == 0 and alpha[:, W // 4:].max() == 0  # no evidence: fully transparent
        want = round((peak - FLOOR) / (1 - FLOOR) * MAX_ALPHA * 255)
        assert abs(int(alpha[0, 0]) - want) <= 1
    assert images[2][0, 0, 3] > images[1][0, 0, 3] > images[0][0, 0, 3]


def test_asking_again_is_answered_from_the_cache_even_when_the_file_is_gone(make_app, ui_db, explained, ask):
    sid, path = explained
    app = make_app("ann", recording_id=ui_db.rec)
    first = reply_buffers(app, ask(app, {"type": "explanation", "suggestion_id": sid}))
    path.unlink()
    again = ask(app, {"type": "explanation", "suggestion_id": sid})
    assert again["ok"] and reply_buffers(app, again) == first


def test_a_missing_or_damaged_file_is_an_error_naming_it(make_app, ui_db, explained, ask):
    sid, path = explained
    path.write_bytes(path.read_bytes()[:40])  # truncated
    app = make_app("ann", recording_id=ui_db.rec)
    reply = ask(app, {"type": "explanation", "suggestion_id": sid})
    assert not reply["ok"] and str(path) in reply["error"]["message"]
    path.unlink()
    reply = ask(app, {"type": "explanation", "suggestion_id": sid})
    assert not reply["ok"] and "does not exist" in reply["error"]["message"] and str(path) in reply["error"]["message"]
    assert app.session is not None  # the app goes on


def test_a_suggestion_without_explanation_says_how_to_get_one(make_app, ui_db, ask):
    app = make_app("ann", recording_id=ui_db.rec)
    reply = ask(app, {"type": "explanation", "suggestion_id": ui_db.suggestions[0]})
    assert not reply["ok"] and "--explain" in reply["error"]["message"]


@pytest.mark.parametrize("bad", [None, "3", 2.5, True])
def test_a_malformed_request_is_refused(make_app, ui_db, bad, ask):
    app = make_app("ann", recording_id=ui_db.rec)
    reply = ask(app, {"type": "explanation", "suggestion_id": bad})
    assert not reply["ok"] and "suggestion_id" in reply["error"]["message"]


def test_a_suggestion_of_another_recording_is_refused(make_app, ui_db, explained, store_copy, ask):
    sid, _ = explained
    other, _ = store_copy("other")
    app = make_app("ann", recording_id=other)
    reply = ask(app, {"type": "explanation", "suggestion_id": sid})
    assert not reply["ok"] and "another recording" in reply["error"]["message"]


def test_without_an_open_recording_the_request_is_refused(make_app, explained, ask):
    sid, _ = explained
    app = make_app("ann")
    reply = ask(app, {"type": "explanation", "suggestion_id": sid})
    assert not reply["ok"] and "no recording is open" in reply["error"]["message"]


def test_another_clinics_clinician_cannot_read_the_suggestion(make_app, ui_db, explained, db_url, ask):
    if not db_url.startswith("postgresql"):
        pytest.skip("row-level security is PostgreSQL's")
    sid, _ = explained
    app = make_app("carl", recording_id=ui_db.rec_south)
    reply = ask(app, {"type": "explanation", "suggestion_id": sid})
    assert not reply["ok"] and "frames" not in reply


def test_heat_map_colours_follow_inferno_and_alpha_rises_from_the_floor():
    rgba = heat_rgba(np.array([[0.0, FLOOR, 0.5, 1.0]], np.float32))
    alpha = rgba[0, :, 3].astype(int)
    assert list(alpha[:2]) == [0, 0] and alpha[3] == round(MAX_ALPHA * 255)
    assert abs(alpha[2] - (0.5 - FLOOR) / (1 - FLOOR) * MAX_ALPHA * 255) <= 1
    assert tuple(rgba[0, 0, :3]) == (0, 0, 4)          # inferno starts black
    assert rgba[0, 3, 0] > 240 and rgba[0, 3, 2] < 180  # and ends light yellow


@pytest.mark.skipif(__import__("shutil").which("node") is None, reason="needs node to run widgets/labeler/*.js")
def test_the_browser_picks_the_latest_clip_frame_at_or_before_the_playhead():
    import json
    import subprocess
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "widgets" / "labeler" / "16_explain.js").read_text()
    script = source + """
        const frames = [12, 14, 16, 18];
        process.stdout.write(JSON.stringify([11, 12, 13, 14, 17, 18, 19, 20, 21].map((f) => explainCamIndex(frames, 20, f))
            .concat([explainCamIndex([5], 6, 5), explainCamIndex([5], 6, 6), explainCamIndex([], 0, 0)])));"""
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [-1, 0, 0, 1, 2, 3, 3, -1, -1, 0, -1, -1]
