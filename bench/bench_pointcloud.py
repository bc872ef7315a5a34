"""The 3D point-cloud view in a real browser: clouds drawn per second while the labeling app plays at 1x.

Runs JupyterLab (subprocess) and headless Chromium (Playwright, the system ``chromium``; WebGL
through SwiftShader, i.e. on the CPU), on the cached bench recording (``bench/_data.py``: full
size, IR and depth 512x424, 120 s, 30 fps; ``--quick``: 256x212, 20 s). For each configuration a
notebook with the labeling app and a 3D view below it is run, the recording is opened from the
app's list, the player shows the IR view alone (what a clinician looks at beside the 3D view,
which shows the IR-coloured points) or all three streams (IR, depth and 1080p RGB: the 2D views
then take most of a 2-core machine's browser), and the app plays at 1x for a few seconds from
frame 0:

* ``PointCloudView stride S``: ``notebooks/labeling-3d.ipynb`` with ``view.stride = S``;
* ``naive stride S``: what a user would otherwise write: an ipyvolume scatter updated by an
  observer of ``app.frame`` with ``geometry.frame_point_cloud`` (xarray read, the whole frame
  converted), ``x``, ``y``, ``z`` and the colours set one after the other, on the kernel's main
  thread (no stale frame skipped); same figure settings otherwise (glyph, animation off).

Clouds drawn per second: distinct clouds the WebGL canvas rendered per second of playback
(the draw counter of ``tests/browser/test_pointcloud_browser.py``: a render whose scatter
``x`` is new). The player's own rate (IR frames displayed per second) shows what the 3D view
costs the 2D views.

    python bench/bench_pointcloud.py              # full-size data; results go into docs/point-cloud.md
    python bench/bench_pointcloud.py --quick      # small recording, 4 s of playback
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

import _data  # noqa: E402
from _app import LabelingAppPage  # noqa: E402
from _lab import NOTEBOOKS, VIEWPORT, LabServer, open_lab  # noqa: E402
from _measure import Table, machine, write_report  # noqa: E402
from bench_ui import bench_lab, wait_idle  # noqa: E402
from test_pointcloud_browser import PointCloudPage  # noqa: E402

from deepepil.testing.browser import launch_chromium  # noqa: E402

OUT_MD = ROOT / ".bench-data" / "results" / "bench_pointcloud.md"
PLAY_SECONDS = 8.0
STRIDES = (8, 4, 2)
#: The player's view during playback: IR alone, then all three streams.
VIEWS = ("ir", "all")

#: The alternative: a user's own observer of the app's playhead (one notebook cell).
NAIVE_CELL = '''
import numpy as np
from ipywidgets import VBox
import ipyvolume as ipv
from deepepil.ui import LabelingApp
from deepepil.recordings.geometry import frame_point_cloud
from deepepil.recordings.encoding import scale_ir

app = LabelingApp()
fig = ipv.figure(width=560, height=460, animation=1.0)
fig.camera.up, fig.camera.position = (0, -1, 0), (0, 0, -1.3)  # the same view as PointCloudView's
points = ipv.scatter(np.zeros(1), np.zeros(1), np.zeros(1), marker="diamond", size=1.0, description="cloud")
STRIDE = 4
stats = {"draws": 0, "total_ms": 0.0}

def redraw(change):
    if app.dataset is None:
        return
    import time
    t0 = time.perf_counter()
    cloud = frame_point_cloud(app.dataset, change["new"], stride=STRIDE)
    if stats["draws"] == 0:  # the same limits as PointCloudView's: a cube around the bulk of the cloud
        lo, hi = np.percentile(cloud.xyz_m, [0.5, 99.5], axis=0)
        half = float(np.max(hi - lo)) * 0.55
        ipv.xlim(*((lo + hi)[0] / 2 + np.array([-half, half])))
        ipv.ylim(*((lo + hi)[1] / 2 + np.array([-half, half])))
        ipv.zlim(*((lo + hi)[2] / 2 + np.array([-half, half])))
    grey = scale_ir(cloud.ir, tuple(app.dataset.attrs["display"]["ir_range"])) / 255.0
    points.x, points.y, points.z = cloud.xyz_m[:, 0], cloud.xyz_m[:, 1], cloud.xyz_m[:, 2]
    points.color = np.stack([grey, grey, grey], axis=1)
    points.description = f"cloud frame {change['new']}"
    stats["draws"] += 1
    stats["total_ms"] += (time.perf_counter() - t0) * 1e3

app.observe(redraw, "frame")
app.observe(lambda change: redraw({"new": app.frame}), "recording")
VBox([app, fig])
'''


def notebook(path: Path, source: str) -> Path:
    cell = {"cell_type": "code", "execution_count": None, "id": "bench", "metadata": {}, "outputs": [],
            "source": source}
    nb = {"cells": [cell], "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                                        "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


def measure(page: Any, ui: LabelingAppPage, view: PointCloudPage | None, seconds: float, stats_code: str,
            stats_file: Path) -> dict[str, Any]:
    """Play from frame 0 at 1x for ``seconds``: distinct clouds drawn, renders, the player's IR frames, kernel stats."""
    ui.go_start()
    if view is not None:
        view.wait_drawn(0, timeout_ms=120_000)
    page.wait_for_timeout(1000)  # prefetch around the paused playhead settles
    kernel = PointCloudPage(page)
    kernel.execute(stats_code.format(path=str(stats_file), when="before"))
    c0, p0 = view.counters() if view else None, ui.counters()
    t0 = time.monotonic()
    ui.press("Space")
    page.wait_for_timeout(seconds * 1000)
    c1, p1 = view.counters() if view else None, ui.counters()
    elapsed = time.monotonic() - t0
    ui.press("Space")
    ui.wait_playing(False)
    kernel.execute(stats_code.format(path=str(stats_file), when="after"))
    rate = (lambda key: (c1[key] - c0[key]) / elapsed) if view else (lambda key: float("nan"))
    return {"clouds_per_s": rate("clouds"), "renders_per_s": rate("renders"),
            "player_fps": (p1["displayed"].get("ir", 0) - p0["displayed"].get("ir", 0)) / elapsed,
            "kernel": json.loads(stats_file.read_text()), "seconds": elapsed}


_STATS = ("import json; s = json.load(open({{path!r}})) if {{when!r}} == 'after' else {{{{}}}}; "
          "json.dump({{{{**s, {{when!r}}: {stats}}}}}, open({{path!r}}, 'w'))")
#: Per kind of notebook: the notebook, code run once after opening the recording (counting the playheads
#: the kernel's 3D view receives), and the kernel stats taken before and after playing.
KINDS: dict[str, dict[str, str]] = {
    "ours": {"setup": "_heads = [0]\nview.observe(lambda c: _heads.__setitem__(0, _heads[0] + 1), 'frame')",
             "stats": _STATS.format(stats="dict(view.stats, points=len(view.cloud) if view.cloud else 0, "
                                          "heads=_heads[0])")},
    "naive": {"setup": "_heads = [0]\napp.observe(lambda c: _heads.__setitem__(0, _heads[0] + 1), 'frame')",
              "stats": _STATS.format(stats="dict(stats, points=len(points.x), heads=_heads[0])")},
    "none": {"setup": "", "stats": _STATS.format(stats="dict()")},
}


def run_config(browser: Any, server: LabServer, nb: str, rec_id: int, kind: str, setup: str, seconds: float,
               work: Path, name: str, view_mode: str = "ir") -> dict[str, Any]:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(120_000)
    try:
        open_lab(page, server)
        ui = LabelingAppPage(page, timeout_ms=120_000)
        ui.start(nb)
        ui.open_recording(rec_id, timeout_ms=600_000)
        view = None if kind == "none" else PointCloudPage(page, timeout_ms=120_000)
        if view is not None:
            view.install_counter()
            view.execute(KINDS[kind]["setup"] + "\n" + setup)
        ui.set_view(view_mode)
        ui.focus()
        stats_code, stats_file = KINDS[kind]["stats"], work / "stats.json"
        measure(page, ui, view, 2.0, stats_code, stats_file)  # warm-up
        result = measure(page, ui, view, seconds, stats_code, stats_file)
        page.screenshot(path=str(work / f"{name}.png"))
        return result
    finally:
        page.context.close()
        server.shutdown_kernels()


def kernel_rates(result: dict[str, Any]) -> tuple[float, float, float]:
    """Kernel ms per cloud, clouds computed per second, playheads received per second (NaN without a view)."""
    before, after = result["kernel"]["before"], result["kernel"]["after"]
    if "draws" not in after:
        return float("nan"), float("nan"), float("nan")
    draws, seconds = after["draws"] - before["draws"], result["seconds"]
    return ((after["total_ms"] - before["total_ms"]) / max(draws, 1), draws / seconds,
            (after["heads"] - before["heads"]) / seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small 20 s recording, 4 s of playback")
    parser.add_argument("--play-seconds", type=float, default=None, help=f"playback window (default {PLAY_SECONDS:g})")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to SECONDS for the machine's load average to fall below 1")
    parser.add_argument("--out", type=Path, default=OUT_MD, help=f"markdown written here (default {OUT_MD})")
    args = parser.parse_args(argv)
    seconds = args.play_seconds or (4.0 if args.quick else PLAY_SECONDS)
    params = _data.DataParams(size="small", seconds=20.0) if args.quick else _data.DataParams()
    command = "python bench/bench_pointcloud.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    waited = wait_idle(args.wait_idle) if args.wait_idle else 0.0
    t_start = time.monotonic()
    data = _data.prepare(params, variants=False)
    facts = machine()
    load = os.getloadavg()[0]
    configs = [(f"no 3D view (notebooks/labeling.ipynb), {v}", "none", "", v) for v in VIEWS]
    configs += [(f"PointCloudView stride {s}, {v}", "ours", f"view.stride = {s}", v) for v in VIEWS for s in STRIDES]
    configs += [(f"naive stride {s}, {v}", "naive", f"STRIDE = {s}", v) for v in VIEWS for s in STRIDES]
    configs.append(("PointCloudView stride 1 (full resolution), ir", "ours", "view.stride = 1", "ir"))
    results: dict[str, dict[str, Any]] = {}

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="deepepil-bench-pointcloud-"))
    try:
        server, rec_id = bench_lab(work, data.store)
        notebooks = {"ours": server.add_notebook(NOTEBOOKS / "labeling-3d.ipynb"),
                     "naive": server.add_notebook(notebook(work / "naive.ipynb", NAIVE_CELL)),
                     "none": server.add_notebook(NOTEBOOKS / "labeling.ipynb")}
        with server, sync_playwright() as pw:
            browser = launch_chromium(pw)
            facts["chromium"] = browser.version
            for name, kind, setup, view_mode in configs:
                result = run_config(browser, server, notebooks[kind], rec_id, kind, setup, seconds, work,
                                    name.split(" (")[0].replace(" ", "_").replace(",", ""), view_mode)
                results[name] = result
                ms, computed, heads = kernel_rates(result)
                print(f"  {name}: {result['clouds_per_s']:.1f} clouds drawn/s ({heads:.1f} playheads received/s, "
                      f"{computed:.1f} computed/s, {ms:.1f} ms each), player {result['player_fps']:.1f} frames/s",
                      flush=True)
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    markdown = report(results, facts, command=command, params=params, seconds=seconds, load=load,
                      minutes=(time.monotonic() - t_start) / 60, waited=waited)
    write_report(markdown, args.out)
    return 0


def report(results: dict[str, dict[str, Any]], facts: dict[str, str], *, command: str, params: Any,
           seconds: float, load: float, minutes: float, waited: float) -> str:
    """The markdown section for docs/point-cloud.md (and docs/benchmarks.md)."""
    out = ["## The 3D point-cloud view in the browser", "",
           f"Command: `{command}`  ",
           f"Date: {facts['date']}; {minutes:.1f} min" + (f" (after waiting {waited:.0f} s for an idle machine)"
                                                          if waited else "") + "  ",
           f"Machine: {facts['nproc']} cores ({facts['cpu']}), {facts['ram']}; load average {load:.1f} at the "
           f"start; Chromium {facts.get('chromium', '?')} headless, WebGL on SwiftShader (CPU)  ",
           f"Data: synthetic recording, {params.size} ({params.seconds:g} s, 30 fps), the labeling app playing "
           f"at 1x with the player showing IR alone (`ir`) or all streams (`all`), {seconds:g} s per measurement after a 2 s warm-up", ""]
    table = Table("Distinct clouds drawn per second by the browser", [
        "3D view", "points per cloud", "clouds drawn/s", "playheads received/s (kernel)", "clouds computed/s",
        "kernel ms per cloud", "renders/s", "player IR frames/s"])
    for name, r in results.items():
        ms, computed, heads = kernel_rates(r)
        points = r["kernel"]["after"].get("points")
        table.add(name, f"{points:,}" if points else "", r["clouds_per_s"], heads, computed, ms,
                  r["renders_per_s"], r["player_fps"])
    for v in VIEWS:
        for s in STRIDES:
            ours, naive = results.get(f"PointCloudView stride {s}, {v}"), results.get(f"naive stride {s}, {v}")
            if ours and naive and naive["clouds_per_s"] > 0:
                table.notes.append(f"Stride {s}, player view {v}: PointCloudView draws "
                                   f"{ours['clouds_per_s'] / naive['clouds_per_s']:.1f}x as many clouds per second "
                                   f"as the naive observer.  ")
    out.append(table.markdown())
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
