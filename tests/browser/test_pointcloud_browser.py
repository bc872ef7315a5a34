"""The 3D point-cloud view beside the labeling app, in JupyterLab and headless Chromium (WebGL: SwiftShader).

``notebooks/labeling-3d.ipynb`` is run as a clinician would; the recording is opened from the
app's landing list. The 3D canvas is read back as pixels, and the cloud the browser holds is
compared with ``geometry.frame_point_cloud`` of the frame the app's playhead is on.

:class:`PointCloudPage` (the 3D view of a page and a draw counter) is also used by
``bench/bench_pointcloud.py``.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from _app import LabelingAppPage
from _lab import open_lab

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FPS = 30
BACKGROUND_RGB = (0x10, 0x14, 0x18)  # the figure's background-color (deepepil/ui/pointcloud.py)

# ipyvolume keeps its newest FigureView in window.last_figure (one figure in these notebooks). The cloud is
# the three.js Points object in the figure's scene (PointCloudView: the figure's x label names its frame),
# or else an ipyvolume scatter whose description starts with "cloud" (the benchmark's naive baseline).
# `state()` gives its current data array (a new object each time the kernel sends a cloud), colours, name
# ("cloud frame N") and points. The counter
# wraps the figure's render function: a render whose data array differs from the last rendered one drew a
# new cloud (`clouds`); one whose data or colours differ redrew it (`redraws`).
_INSTALL_COUNTER = """() => {
    const f = window.last_figure;
    if (!f) throw new Error('no ipyvolume figure on the page');
    if (window.__deepepil_pointcloud) return;
    const first = a => (a && typeof a[0] === 'object' && a[0] !== null && a[0].length !== undefined) ? a[0] : a;
    const state = () => {
        const p = f.scene.children.find(o => o.type === 'Points');
        if (p) {
            const data = p.geometry.attributes.position.data;
            const xyz = [0, 1, 2].map(k => (n) => { const out = []; for (let i = 0; i < n; i++)
                                                   out.push(data.array[i * data.stride + k]); return out; });
            let n = 0;
            while (n < data.count && !Number.isNaN(data.array[n * data.stride])) n++;
            const tag = /frame (\\d+)\\)$/.exec(f.model.get('xlabel') || '');  // "x (cloud K: frame N)"
            return {data: data.array, colours: data.array, name: tag ? `cloud frame ${tag[1]}` : null,
                    visible: p.visible, n, xyz};
        }
        const m = Object.values(f.scatter_views).map(v => v.model)
                    .find(m => (m.get('description') || '').startsWith('cloud'));
        if (!m) return null;
        const xyz = ['x', 'y', 'z'].map(k => (n) => Array.from(first(m.get(k)).slice(0, n)));
        return {data: m.get('x'), colours: m.get('color'), name: m.get('description'), visible: m.get('visible'),
                n: first(m.get('x')).length, xyz};
    };
    const c = window.__deepepil_pointcloud = {renders: 0, clouds: 0, redraws: 0, drawnData: null,
                                              drawnColours: null, drawnName: null, times: [], state};
    const real = f._real_update;
    f._real_update = function (...args) {
        const out = real.apply(this, args);
        c.renders += 1;
        const s = state();
        if (s && s.visible && (s.data !== c.drawnData || s.colours !== c.drawnColours)) {
            c.redraws += 1;
            if (s.data !== c.drawnData) {
                c.clouds += 1;
                c.times.push(performance.now());
            }
            c.drawnData = s.data;
            c.drawnColours = s.colours;
        }
        c.drawnName = s ? s.name : null;
        return out;
    };
    f.update();
}"""


class PointCloudPage:
    """The PointCloudView of a JupyterLab page: its canvas, the cloud the browser holds, a draw counter."""

    def __init__(self, page: Any, timeout_ms: float = 60_000) -> None:
        self.page = page
        self.timeout_ms = timeout_ms

    def install_counter(self) -> None:
        """Start counting renders and distinct clouds drawn (``window.__deepepil_pointcloud``)."""
        self.page.wait_for_function("() => window.last_figure && window.last_figure.scatter_views",
                                    timeout=self.timeout_ms)
        self.page.evaluate(_INSTALL_COUNTER)

    def counters(self) -> dict[str, Any]:
        return self.page.evaluate(
            "() => { const c = window.__deepepil_pointcloud; return {renders: c.renders, clouds: c.clouds, "
            "redraws: c.redraws, times: c.times.slice(), drawn: c.drawnName}; }")

    def wait_drawn(self, frame: int, timeout_ms: float | None = None) -> None:
        """Wait until the cloud of ``frame`` is the one the canvas last rendered."""
        self.page.wait_for_function(
            """(want) => { const c = window.__deepepil_pointcloud; const s = c.state();
                   if (!s || s.name !== want) return false;
                   if (c.drawnData !== s.data || c.drawnName !== want) { window.last_figure.update(); return false; }
                   return true; }""",
            arg=f"cloud frame {frame}", timeout=timeout_ms or self.timeout_ms, polling=100)

    def cloud(self, n_values: int = 64) -> dict[str, Any]:
        """The cloud the browser holds: ``n`` points, the first ``n_values`` x, y, z, and its ``name``."""
        return self.page.evaluate(
            """(k) => { const s = window.__deepepil_pointcloud.state(); const m = Math.min(k, s.n);
                   return {n: s.n, x: s.xyz[0](m), y: s.xyz[1](m), z: s.xyz[2](m), name: s.name}; }""", n_values)

    def canvas_pixels(self) -> np.ndarray:
        """The 3D canvas as shown, ``(H, W, 3)`` uint8 (scrolled into view, after two more renders)."""
        from PIL import Image

        self.page.evaluate("() => window.last_figure.renderer.domElement.scrollIntoView({block: 'center'})")
        self.page.evaluate("() => new Promise(r => { window.last_figure.update(); "
                           "requestAnimationFrame(() => requestAnimationFrame(r)); })")
        box = self.page.evaluate("""() => { const r = window.last_figure.renderer.domElement.getBoundingClientRect();
                                         return {x: r.x, y: r.y, width: r.width, height: r.height}; }""")
        png = self.page.screenshot(clip=box)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def click_colour(self, label: str) -> None:
        """Click the colour switch beside the figure (``"IR"`` or ``"Depth"``)."""
        self.page.locator(".de-pointcloud .widget-toggle-button", has_text=label).click()

    def execute(self, code: str) -> None:
        """Run ``code`` in the notebook's kernel (as a user typing in a new cell would)."""
        self.page.evaluate(
            """async (code) => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                   const reply = await k.requestExecute({code, store_history: false}).done;
                   if (reply.content.status !== 'ok') throw new Error(reply.content.evalue || 'error'); }""", code)


def non_background_fraction(pixels: np.ndarray) -> float:
    return float((np.abs(pixels.astype(int) - BACKGROUND_RGB).max(axis=2) > 24).mean())


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 24).mean())


@pytest.fixture
def opened(lab, page):
    """JupyterLab with notebooks/labeling-3d.ipynb run and the clinician's recording open: (app page, 3D view)."""
    if "labeling-3d.ipynb" not in lab.notebooks:
        pytest.fail("notebooks/labeling-3d.ipynb is missing: the app with the 3D view")
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith((lab.server.url, "data:", "blob:")) else None)
    page.outside_requests = outside
    open_lab(page, lab.server)
    ui = LabelingAppPage(page)
    ui.start(lab.notebooks["labeling-3d.ipynb"])
    ui.open_recording(lab.ids.recording)
    view = PointCloudPage(page)
    view.install_counter()
    return ui, view


def expected_cloud(lab, frame: int):
    import deepepil
    from deepepil.recordings.geometry import frame_point_cloud

    return frame_point_cloud(deepepil.open_recording(lab.cohort.stores[0]), frame, stride=4)


def assert_holds_cloud_of(view: PointCloudPage, lab, frame: int) -> None:
    held, expected = view.cloud(), expected_cloud(lab, frame)
    assert held["name"] == f"cloud frame {frame}"
    assert held["n"] == len(expected)
    for k, axis in enumerate("xyz"):  # float32 on both sides: exact
        np.testing.assert_array_equal(np.float32(held[axis]), expected.xyz_m[: len(held[axis]), k])


def test_the_3d_canvas_shows_the_frames_cloud_and_follows_the_playhead(lab, opened, page, shot):
    ui, view = opened
    view.wait_drawn(0)
    start = view.canvas_pixels()
    shot("frame-0")
    assert_holds_cloud_of(view, lab, 0)
    assert non_background_fraction(start) > 0.05, "the WebGL canvas shows no cloud"
    assert len(np.unique(start.reshape(-1, 3), axis=0)) > 50  # shaded points, not a flat fill

    ui.focus()
    ui.seek_by_keys_to(90, FPS)
    view.wait_drawn(90)
    moved = view.canvas_pixels()
    shot("frame-90")
    assert_holds_cloud_of(view, lab, 90)
    assert non_background_fraction(moved) > 0.05
    assert changed_fraction(start, moved) > 0.002, "moving the playhead did not change the 3D view"

    # playing: the 3D view follows, cloud after cloud, and ends on the frame the player stops on
    before = view.counters()["clouds"]
    ui.press("Space")
    ui.wait_playing(True)
    page.wait_for_timeout(2000)
    ui.press("Space")
    ui.wait_playing(False)
    stopped = ui.frame()
    view.wait_drawn(stopped)
    assert view.counters()["clouds"] - before >= 4, view.counters()
    assert_holds_cloud_of(view, lab, stopped)
    assert page.outside_requests == [], "something was fetched from outside the Jupyter server (a CDN?)"
    assert not [line for line in page.console_lines if "THREE.WebGL" in line and "error" in line.lower()]


def test_the_colour_switch_recolours_the_cloud_in_the_browser(lab, opened, page, shot):
    ui, view = opened
    view.wait_drawn(0)
    ir = view.canvas_pixels()
    redraws = view.counters()["redraws"]
    view.click_colour("Depth")
    page.wait_for_function("(n) => window.__deepepil_pointcloud.redraws > n", arg=redraws, timeout=30_000)
    view.wait_drawn(0)
    depth = view.canvas_pixels()
    shot("depth-colours")
    assert_holds_cloud_of(view, lab, 0)  # the same points
    assert changed_fraction(ir, depth) > 0.02
    hue = depth.astype(int)
    coloured = (np.abs(hue[..., 0] - hue[..., 1]) > 30) | (np.abs(hue[..., 1] - hue[..., 2]) > 30)
    assert coloured.mean() > 0.02, "depth colours (viridis) are not grey"
