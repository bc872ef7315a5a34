"""A model suggestion's explanation (Grad-CAM) over the IR and depth views, in JupyterLab and headless Chromium.

A data scientist has published a suggestion with an explanation file (an
:class:`~deepepil.ml.explain.Explanation` whose evidence is a bright square in one corner of the
clip's grid). The clinician selects the suggestion on the timeline and presses ``e``: the views
show the heat map stretched over the clip's crop box, at the place the box says (checked against
the canvas's own box, computed here), only on the clip's frames, and it goes away with ``e``
again. Screenshots go to ``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import numpy as np
import pytest
from _app import LabelingAppPage
from _lab import open_lab

import deepepil
from deepepil.labels import connect
from deepepil.ml.explain import Explanation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FPS = 30
CLIP = list(range(96, 128, 2))  # 16 clip frames at 15 fps: source frames 96..126, shown until 128
REGION, LABEL = "trunk", "tonic posturing"


@pytest.fixture
def explained(lab, tmp_path):
    """A suggestion on the clinician's recording with an explanation: (suggestion id, Explanation)."""
    ds = deepepil.open_recording(lab.cohort.stores[0])
    height, width = ds.sizes["y"], ds.sizes["x"]
    cam = np.zeros((len(CLIP), 32, 32), np.float32)
    cam[:, :8, :8] = 1.0  # evidence in the top-left eighth of the box only
    box = (0.25 * height, 0.75 * height, 0.3 * width, 0.7 * width)  # y0, y1, x0, x1
    exp = Explanation(cam=cam, frames=np.asarray(CLIP), box_px=box, class_index=1, class_name=LABEL, score=0.83)
    path = exp.save(tmp_path / "explanations" / "s.npz")
    with connect(lab.db_url, user="ds") as store:
        row = store.add_suggestion(lab.ids.recording, REGION, LABEL, CLIP[0], CLIP[-1] + 2, 0.83, "moi-i3d:4",
                                   explanation_uri=str(path))
    return row.id, exp, (width, height)


def overlay_state(page, stream: str) -> dict:
    return page.evaluate(
        """(stream) => { const svg = document.querySelector(`.de-explain-overlay[data-stream="${stream}"]`);
               if (!svg || svg.style.display === 'none') return {visible: false};
               const r = svg.querySelector('image').getBoundingClientRect();
               return {visible: true, x: r.x, y: r.y, width: r.width, height: r.height,
                       href: svg.querySelector('image').getAttribute('href')}; }""", stream)


def test_e_shows_the_selected_suggestions_grad_cam_over_ir_and_depth(lab, page, explained, shot):
    sid, exp, size = explained
    open_lab(page, lab.server)
    ui = LabelingAppPage(page)
    ui.start(lab.notebooks["labeling.ipynb"])
    ui.open_recording(lab.ids.recording)
    ui.focus()
    assert not overlay_state(page, "ir")["visible"]

    page.mouse.click(*ui.suggestion_xy(REGION, CLIP[4]))
    assert ui.selection_details()["title"] == "Suggestion"
    page.locator(".de-shell-btn--explain").wait_for()  # the panel offers it: this suggestion has one
    ui.focus()
    ui.seek_by_keys_to(40, FPS)  # outside the clip: turning explanations on goes to the clip
    ui.press("e")
    page.wait_for_function("() => window.__deepepil_explain && window.__deepepil_explain.shown", timeout=30_000)
    assert ui.frame() == CLIP[0]
    ui.wait_player_shows(CLIP[0], ("ir", "depth"))
    shown = page.evaluate("() => window.__deepepil_explain.shown")
    assert shown == {"suggestion_id": sid, "cam_index": 0}

    y0, y1, x0, x1 = exp.box_px
    for stream in ("ir", "depth"):
        state = overlay_state(page, stream)
        assert state["visible"] and state["href"].startswith("blob:")
        # the box's corners are pixel edges: edge u = centre u - 0.5
        left, top = ui.image_xy(stream, x0 - 0.5, y0 - 0.5, size)
        right, bottom = ui.image_xy(stream, x1 - 0.5, y1 - 0.5, size)
        assert state["x"] == pytest.approx(left, abs=1) and state["y"] == pytest.approx(top, abs=1)
        assert state["width"] == pytest.approx(right - left, abs=1)
        assert state["height"] == pytest.approx(bottom - top, abs=1)
    badge = page.locator(".de-explain-badge:not([hidden])").first.inner_text()
    assert LABEL in badge and "0.83" in badge
    shot("explained")

    # the heat is drawn where the evidence is: bright in the box's top-left corner, not in its centre
    canvas = page.locator(".de-player-view[data-stream='ir']").screenshot()
    from io import BytesIO

    from PIL import Image

    view = page.locator(".de-player-view[data-stream='ir']").bounding_box()
    pixels = np.asarray(Image.open(BytesIO(canvas)).convert("RGB")).astype(int)
    scale = pixels.shape[1] / view["width"]

    def at(u: float, v: float) -> np.ndarray:
        x, y = ui.image_xy("ir", u, v, size)
        return pixels[int((y - view["y"]) * scale), int((x - view["x"]) * scale)]

    hot = at(x0 + (x1 - x0) / 16, y0 + (y1 - y0) / 16)
    assert hot[0] > 180 and hot[0] - hot[2] > 60, f"inferno's yellow expected over the evidence, got {hot}"
    cold = at((x0 + x1) / 2, (y0 + y1) / 2)
    assert not (cold[0] > 180 and cold[0] - cold[2] > 60), f"no heat expected where there is no evidence: {cold}"

    # later clip frames pick their own map; past the clip nothing is drawn
    ui.press(*["ArrowRight"] * 5)
    page.wait_for_function("() => (window.__deepepil_explain.shown || {}).cam_index === 2")
    ui.seek_by_keys_to(CLIP[-1] + 2, FPS)
    page.wait_for_function("() => window.__deepepil_explain.shown === null")
    assert not overlay_state(page, "ir")["visible"] and not overlay_state(page, "depth")["visible"]

    # e again: off
    ui.seek_by_keys_to(CLIP[3], FPS)
    page.wait_for_function("() => (window.__deepepil_explain.shown || {}).cam_index === 3")
    ui.press("e")
    page.wait_for_function("() => !window.__deepepil_explain.mode && window.__deepepil_explain.shown === null")
    assert page.locator(".de-explain-badge:not([hidden])").count() == 0
    errors = [line for line in page.console_lines if line.startswith(("[error]", "[pageerror]"))]
    assert not errors, errors


def test_a_suggestion_without_explanation_says_so(lab, page, shot):
    open_lab(page, lab.server)
    ui = LabelingAppPage(page)
    ui.start(lab.notebooks["labeling.ipynb"])
    ui.open_recording(lab.ids.recording)
    ui.focus()
    page.mouse.click(*ui.suggestion_xy("head/face", 50))  # the template's suggestion has no explanation
    assert ui.selection_details()["title"] == "Suggestion"
    assert page.locator(".de-shell-btn--explain").count() == 0
    ui.focus()
    ui.press("e")
    page.locator(".de-explain-badge:not([hidden])", has_text="none for this suggestion").first.wait_for()
    assert page.evaluate("() => window.__deepepil_explain.shown") is None
    shot("no-explanation")
