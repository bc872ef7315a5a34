"""The labeling app in a real browser: playback frame rate, seek-to-display latency, timeline redraw.

Runs JupyterLab (subprocess) and headless Chromium (Playwright, the system ``chromium``),
opens ``notebooks/labeling.ipynb`` as the clinician would, opens the cached bench recording
(``bench/_data.py``: full size, 120 s, 30 fps; built once by ``bench/bench_store.py`` or here)
and reads the player's and the timeline's counters (``window.__deepepil_player``,
``window.__deepepil_timeline``; documented at the top of ``widgets/labeler/10_player.js`` and
``20_timeline.js``). The same measurements are made, in the same page, on what a user would
otherwise pick: an HTML5 ``<video>`` element playing an H.264 MP4 of the same IR frames (the
IR display mapping of ``encode_frame``, libx264 crf 18, yuv420p; GOP 250 as ffmpeg's
default, and GOP 30 as an editing-friendly encode).

    python bench/bench_ui.py              # full-size data; results go into docs/benchmarks.md
    python bench/bench_ui.py --quick      # small 20 s recording, fewer seeks

Frames displayed per second: distinct frames put on screen per second of wall-clock time
while playing (the player's draw counter; ``requestVideoFrameCallback`` for the video).
Seek-to-display: from the seek call to the sought frame being on screen.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

import _data  # noqa: E402
from _app import PLAYER_PLAY, PLAYER_SCRUB, LabelingAppPage  # noqa: E402
from _lab import NOTEBOOKS, VIEWPORT, LabServer, open_lab  # noqa: E402

from deepepil.testing.browser import launch_chromium  # noqa: E402
from _measure import Table, Target, machine, write_report  # noqa: E402

UI_CACHE = ROOT / ".bench-data" / "ui"
OUT_MD = ROOT / ".bench-data" / "results" / "bench_ui.md"
PLAY_SECONDS = 8.0
BASELINE_GOPS = (250, 30)


# --- the baseline: H.264 MP4s of the IR stream --------------------------------------------------

def baseline_mp4(data: _data.BenchData, gop: int, say=print) -> Path:
    """H.264 (libx264, crf 18, yuv420p) of the store's IR frames as the app shows them; cached."""
    import deepepil
    from deepepil.recordings.encoding import frame_to_rgb8
    from deepepil.recordings.readers.video import write_video

    path = UI_CACHE / data.params.key / f"ir-gop{gop}.mp4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = deepepil.open_recording(data.store)
    n = int(ds.sizes["time"])
    say(f"  encoding {path.name} ({n} IR frames, libx264 GOP {gop}, crf 18, yuv420p)")

    def frames():
        for i in range(n):
            grey = frame_to_rgb8(ds, "ir", i)
            yield np.repeat(grey[:, :, None], 3, axis=2)

    tmp = path.with_name(f".{path.stem}.partial.mp4")
    tmp.unlink(missing_ok=True)
    write_video(frames(), tmp, float(ds.attrs["fps"]), codec="libx264", gop=gop, crf=18, num_frames=n,
                pix_fmt="yuv420p")
    tmp.rename(path)
    return path


_VIDEO_SETUP = """async ({url, width, height}) => {
    document.getElementById('bench-video')?.remove();
    const v = document.createElement('video');
    v.id = 'bench-video'; v.muted = true; v.preload = 'auto'; v.playsInline = true;
    v.style = `position:fixed;left:8px;top:8px;z-index:100000;width:${width}px;height:${height}px;background:#000`;
    v.src = url;
    document.body.appendChild(v);
    await new Promise((ok, fail) => {
        v.addEventListener('canplaythrough', ok, {once: true});
        v.addEventListener('error', () => fail(new Error('video: ' + (v.error && v.error.message))), {once: true});
    });
    return {duration: v.duration, width: v.videoWidth, height: v.videoHeight};
}"""

_VIDEO_PLAY = """async ({rate, seconds}) => {
    const v = document.getElementById('bench-video');
    v.pause(); v.currentTime = 0;
    await new Promise(ok => v.addEventListener('seeked', ok, {once: true}));
    v.playbackRate = rate;
    const seen = new Set(); let first = null, last = null;
    let running = true;
    const cb = (now, meta) => { if (!running) return;
        if (first === null) first = now; last = now; seen.add(meta.mediaTime); v.requestVideoFrameCallback(cb); };
    v.requestVideoFrameCallback(cb);
    const q0 = v.getVideoPlaybackQuality();
    await v.play();
    await new Promise(ok => setTimeout(ok, seconds * 1000));
    running = false; v.pause();
    const q1 = v.getVideoPlaybackQuality();
    return {frames: seen.size, seconds: (last - first) / 1000,
            dropped: q1.droppedVideoFrames - q0.droppedVideoFrames};
}"""

_VIDEO_SEEKS = """async ({targets, fps, gapMs}) => {
    const v = document.getElementById('bench-video');
    v.pause();
    const out = [];
    for (const frame of targets) {
        await new Promise(ok => setTimeout(ok, gapMs));
        const t = (frame + 0.5) / fps;
        const shown = new Promise(ok => v.requestVideoFrameCallback((now, meta) => ok(meta)));
        const t0 = performance.now();
        v.currentTime = t;
        const meta = await shown;
        out.push({ms: performance.now() - t0, frame: Math.floor(meta.mediaTime * fps + 1e-3)});
    }
    return out;
}"""


def measure_video(page: Any, url: str, fps: float, targets: list[int], play_seconds: float,
                  size: tuple[int, int]) -> dict[str, Any]:
    """Playback at 1x/2x and seeks of the ``<video>`` baseline, in ``page``."""
    info = page.evaluate(_VIDEO_SETUP, {"url": url, "width": size[0], "height": size[1]})
    out: dict[str, Any] = {"info": info}
    for rate in (1.0, 2.0):
        res = page.evaluate(_VIDEO_PLAY, {"rate": rate, "seconds": play_seconds})
        out[f"play_{rate:g}x"] = res["frames"] / res["seconds"] if res["seconds"] > 0 else 0.0
        out[f"dropped_{rate:g}x"] = res["dropped"]
    seeks = page.evaluate(_VIDEO_SEEKS, {"targets": targets, "fps": fps, "gapMs": 300})
    ms = np.array([s["ms"] for s in seeks])
    out["seek_ms"] = ms
    out["seek_wrong_frames"] = sum(s["frame"] != t for s, t in zip(seeks, targets))
    page.evaluate("() => document.getElementById('bench-video')?.remove()")
    return out


# --- the app: playback, seeks, timeline --------------------------------------------------------

_APP_PLAY = """async ({seconds, playSelector}) => {
    const c = window.__deepepil_player;
    const play = document.querySelector(playSelector);
    const before = JSON.parse(JSON.stringify({displayed: c.displayed, skipped: c.skipped}));
    const t0 = performance.now();
    play.click();
    await new Promise(ok => setTimeout(ok, seconds * 1000));
    play.click();
    const elapsed = (performance.now() - t0) / 1000;
    const diff = (a, b) => Object.fromEntries(Object.keys(a).map(k => [k, a[k] - (b[k] || 0)]));
    return {seconds: elapsed, displayed: diff(c.displayed, before.displayed), skipped: diff(c.skipped, before.skipped),
            playing: c.playing, stride: c.stride};
}"""

_APP_SEEKS = """async ({targets, streams, gapMs, scrubSelector}) => {
    const c = window.__deepepil_player;
    const scrub = document.querySelector(scrubSelector);
    const out = [];
    const firstPlayerSample = c.seeks;
    for (const f of targets) {
        await new Promise(ok => setTimeout(ok, gapMs));
        const t0 = performance.now();
        scrub.value = String(f);
        scrub.dispatchEvent(new Event('input', {bubbles: true}));
        await new Promise((ok, fail) => {
            const check = () => {
                if (streams.every(s => c.shown[s] === f)) ok();
                else if (performance.now() - t0 > 20000) fail(new Error(`frame ${f} not shown after 20 s`));
                else requestAnimationFrame(check);
            };
            check();
        });
        out.push(performance.now() - t0);
    }
    const n = Math.min(c.seeks - firstPlayerSample, c.lastSeekMs.length);
    return {ms: out, player_ms: c.lastSeekMs.slice(c.lastSeekMs.length - n)};
}"""

_TIMELINE_REDRAWS = """(n) => { const t = window.__deepepil_timeline; const out = [];
    for (let i = 0; i < n; i++) out.push(t.redraw()); return out; }"""


def measure_play(page: Any, ui: LabelingAppPage, view: str, rate: float, seconds: float) -> dict[str, Any]:
    streams = ("ir", "depth", "rgb") if view == "all" else (view,)
    ui.set_view(view)
    ui.set_rate(rate)
    ui.go_start(streams)
    page.wait_for_timeout(1000)  # the prefetch around a paused playhead settles, as when a user presses play
    res = page.evaluate(_APP_PLAY, {"seconds": seconds, "playSelector": PLAYER_PLAY})
    ui.wait_playing(False)
    res["fps"] = {s: res["displayed"].get(s, 0) / res["seconds"] for s in streams}
    res["streams"] = streams
    return res


def measure_seeks(page: Any, ui: LabelingAppPage, view: str, targets: list[int], gap_ms: int) -> dict[str, Any]:
    streams = ("ir", "depth", "rgb") if view == "all" else (view,)
    ui.set_view(view)
    ui.set_rate(1.0)
    res = page.evaluate(_APP_SEEKS, {"targets": targets, "streams": list(streams), "gapMs": gap_ms,
                                     "scrubSelector": PLAYER_SCRUB})
    return {"ms": np.array(res["ms"]), "player_ms": np.array(res["player_ms"])}


# --- set-up ----------------------------------------------------------------------------------------

def bench_db(url: str, store: Path) -> int:
    """A label database with one clinician and the bench recording; return the recording id."""
    from deepepil.labels import admin, catalog, schema

    schema.upgrade(url)
    admin.add_clinic("Bench", url=url)
    admin.add_user("clinician", "clinician", "Bench", url=url)
    admin.add_user("root", "admin", url=url)
    return catalog.register_recording(store, "Bench", "BENCH-0001", url, user="root")


def bench_lab(work: Path, store: Path) -> tuple[LabServer, int]:
    """JupyterLab (not started) over a fresh :func:`bench_db` in ``work`` as the clinician; (server, recording id)."""
    url = f"sqlite:///{work / 'labels.sqlite'}"
    rec_id = bench_db(url, store)
    server = LabServer(work / "lab", {"DEEPEPIL_DATABASE_URL": url, "DEEPEPIL_USER": "clinician",
                                      "DEEPEPIL_STORE": str(store.parent)})
    return server, rec_id


def add_many_mois(url: str, recording_id: int, n: int, n_frames: int, seed: int = 0) -> None:
    """``n`` random MOIs (0.3 to 6 s, every region, some with laterality) on the recording, in one batch."""
    from deepepil.labels import vocabulary
    from deepepil.labels.service import connect

    rng = np.random.default_rng(seed)
    regions = list(vocabulary.REGIONS)
    records, seen = [], set()
    while len(records) < n:
        length = int(rng.integers(9, 180))
        start = int(rng.integers(0, n_frames - length))
        region = regions[int(rng.integers(len(regions)))]
        key = (region, start, length)
        if key in seen:
            continue
        seen.add(key)
        records.append({"recording_id": recording_id, "region": region,
                        "label": vocabulary.MOI_LABELS[int(rng.integers(len(vocabulary.MOI_LABELS)))],
                        "laterality": [None, "left", "right", "bilateral"][int(rng.integers(4))],
                        "start_frame": start, "end_frame": start + length})
    with connect(url, user="clinician") as store:
        store.add_mois(records)


class CpuShare:
    """CPU used by other processes on the machine while a section runs (share of all cores)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.sections: dict[str, float] = {}

    def _ours(self) -> float:
        me = self._psutil.Process()
        total = 0.0
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except self._psutil.Error:
                pass
        return total

    def _busy(self) -> float:
        t = self._psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0)

    def start(self) -> tuple[float, float, float]:
        return time.monotonic(), self._busy(), self._ours()

    def stop(self, name: str, started: tuple[float, float, float]) -> None:
        wall = time.monotonic() - started[0]
        others = (self._busy() - started[1]) - (self._ours() - started[2])
        self.sections[name] = max(0.0, others) / (wall * self._psutil.cpu_count())


def wait_idle(limit_seconds: float, load_below: float = 1.0) -> float:
    """Wait (up to ``limit_seconds``) until the 1-minute load average is below ``load_below``; seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_seconds:
        if __import__("os").getloadavg()[0] < load_below:
            break
        time.sleep(10)
    return time.monotonic() - t0


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


# --- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small 20 s recording, 30 seeks, 4 s of playback")
    parser.add_argument("--seeks", type=int, default=None, help="random seeks per method (default 100; 30 quick)")
    parser.add_argument("--play-seconds", type=float, default=None, help=f"playback window (default {PLAY_SECONDS:g})")
    parser.add_argument("--mois", type=int, default=2000, help="MOIs for the timeline redraw (default 2000)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to SECONDS for the machine's load average to fall below 1")
    parser.add_argument("--out", type=Path, default=OUT_MD, help=f"markdown written here (default {OUT_MD})")
    args = parser.parse_args(argv)
    quick = args.quick
    n_seeks = args.seeks or (30 if quick else 100)
    play_seconds = args.play_seconds or (4.0 if quick else PLAY_SECONDS)
    params = _data.DataParams(size="small", seconds=20.0) if quick else _data.DataParams()
    command = "python bench/bench_ui.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()

    waited = wait_idle(args.wait_idle) if args.wait_idle else 0.0
    t_start = time.monotonic()
    data = _data.prepare(params, variants=False)
    mp4s = {gop: baseline_mp4(data, gop) for gop in BASELINE_GOPS}
    import deepepil

    ds = deepepil.open_recording(data.store)
    fps = float(ds.attrs["fps"])
    n_frames = int(ds.sizes["time"])
    ir_size = (int(ds["ir"].shape[-1]), int(ds["ir"].shape[-2]))
    targets = [int(x) for x in np.random.default_rng(0).integers(0, n_frames, n_seeks)]
    facts = machine()
    cpu = CpuShare()
    results: dict[str, Any] = {}

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="deepepil-bench-ui-"))
    try:
        server, rec_id = bench_lab(work, data.store)
        url = f"sqlite:///{work / 'labels.sqlite'}"
        notebook = server.add_notebook(NOTEBOOKS / "labeling.ipynb")
        for mp4 in mp4s.values():
            shutil.copyfile(mp4, server.root_dir / mp4.name)
        with server, sync_playwright() as pw:
            browser = launch_chromium(pw)
            facts["chromium"] = browser.version
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(120_000)
            open_lab(page, server)
            ui = LabelingAppPage(page, timeout_ms=120_000)
            ui.start(notebook)
            t0 = time.monotonic()
            ui.open_recording(rec_id, timeout_ms=600_000)
            results["open_seconds"] = time.monotonic() - t0
            ui.focus()
            measure_play(page, ui, "all", 1.0, 2.0)  # warm-up: caches, JIT, decoders

            for view in ("ir", "all"):
                for rate in (1.0, 2.0):
                    started = cpu.start()
                    results[("play", view, rate)] = measure_play(page, ui, view, rate, play_seconds)
                    cpu.stop(f"play {view} {rate:g}x", started)
                    print(f"  play {view} {rate:g}x: " + ", ".join(
                        f"{s} {v:.1f}/s" for s, v in results[("play", view, rate)]["fps"].items()), flush=True)
            for view in ("ir", "all"):
                started = cpu.start()
                results[("seek", view)] = measure_seeks(page, ui, view, targets, gap_ms=300)
                cpu.stop(f"seek {view}", started)
                ms = results[("seek", view)]["ms"]
                print(f"  seek {view}: p50 {pct(ms, 50):.0f} ms, p95 {pct(ms, 95):.0f} ms", flush=True)

            ui.set_view("ir")
            for gop, mp4 in mp4s.items():
                started = cpu.start()
                results[("video", gop)] = measure_video(page, f"{server.url}/files/{mp4.name}", fps, targets,
                                                        play_seconds, ir_size)
                cpu.stop(f"video GOP {gop}", started)
                v = results[("video", gop)]
                print(f"  <video> GOP {gop}: play 1x {v['play_1x']:.1f}/s, 2x {v['play_2x']:.1f}/s, seek p50 "
                      f"{pct(v['seek_ms'], 50):.0f} ms, p95 {pct(v['seek_ms'], 95):.0f} ms", flush=True)

            # the timeline with many MOIs: add them in the database, reopen the recording
            results[("redraw", 0)] = np.array(page.evaluate(_TIMELINE_REDRAWS, 60))
            add_many_mois(url, rec_id, args.mois, n_frames)
            ui.back_to_list()
            t0 = time.monotonic()
            ui.open_recording(rec_id, timeout_ms=600_000)
            results["open_mois_seconds"] = time.monotonic() - t0
            ui.focus()
            started = cpu.start()
            fit = np.array(page.evaluate(_TIMELINE_REDRAWS, 60))
            ui.press("Home", "+", "+", "+", "+")  # zoom in about 6.5x around the playhead
            page.wait_for_timeout(300)
            zoomed = np.array(page.evaluate(_TIMELINE_REDRAWS, 60))
            ui.press("0")
            cpu.stop("timeline", started)
            results[("redraw", args.mois)] = (fit, zoomed)
            print(f"  timeline redraw, {args.mois} MOIs: fit median {np.median(fit):.1f} ms, zoomed median "
                  f"{np.median(zoomed):.1f} ms", flush=True)
            started = cpu.start()
            results[("play-mois", "ir", 1.0)] = measure_play(page, ui, "ir", 1.0, play_seconds)
            cpu.stop("play ir 1x with MOIs", started)
            page.screenshot(path=str(work / "last.png"))
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    markdown = report(results, facts, cpu.sections, command=command, params=params, fps=fps, n_frames=n_frames,
                      n_seeks=n_seeks, play_seconds=play_seconds, n_mois=args.mois, ir_size=ir_size,
                      minutes=(time.monotonic() - t_start) / 60, waited=waited)
    write_report(markdown, args.out)
    return 0


def report(results: dict[str, Any], facts: dict[str, str], cpu: dict[str, float], *, command: str,
           params: Any, fps: float, n_frames: int, n_seeks: int, play_seconds: float, n_mois: int,
           ir_size: tuple[int, int], minutes: float, waited: float) -> str:
    """The markdown section for docs/benchmarks.md."""
    out = ["## The labeling app in the browser", "",
           f"Command: `{command}`  ",
           f"Date: {facts['date']}; {minutes:.1f} min" + (f" (after waiting {waited:.0f} s for an idle machine)"
                                                          if waited else "") + "  ",
           f"Machine: {facts['nproc']} cores ({facts['cpu']}), {facts['ram']} RAM, {facts['os']}, no GPU; "
           f"Chromium {facts.get('chromium', '?')} headless (software rendering), JupyterLab kernel on the same "
           "machine  ",
           f"Data: synthetic recording size={params.size!r}, {params.seconds:g} s, {n_frames} frames at {fps:g} fps; "
           f"IR {ir_size[0]}x{ir_size[1]}; the app's default view size at a 1600x1000 viewport  ",
           "CPU used by other processes while each section ran (share of all cores): "
           + ", ".join(f"{k} {100 * v:.0f} %" for k, v in cpu.items()), "",
           f"Opening the recording took {results['open_seconds']:.1f} s "
           f"({results['open_mois_seconds']:.1f} s with {n_mois} MOIs).", ""]

    play = Table(f"Frames displayed per second during playback ({play_seconds:g} s from frame 0)",
                 ["what", "rate", "IR /s", "depth /s", "RGB /s", "frames skipped (IR)", "content frames/s"])
    for view in ("ir", "all"):
        for rate in (1.0, 2.0):
            r = results[("play", view, rate)]
            f = r["fps"]
            play.add("app, IR only" if view == "ir" else "app, all streams side by side", f"{rate:g}x",
                     f.get("ir", float("nan")), f.get("depth", float("nan")), f.get("rgb", float("nan")),
                     r["skipped"].get("ir", 0), fps * rate)
    r = results[("play-mois", "ir", 1.0)]
    play.add(f"app, IR only, {n_mois} MOIs on the timeline", "1x", r["fps"]["ir"], float("nan"), float("nan"),
             r["skipped"].get("ir", 0), fps)
    for gop in BASELINE_GOPS:
        v = results[("video", gop)]
        for rate in (1.0, 2.0):
            play.add(f"`<video>` H.264 MP4 of the IR frames, GOP {gop}", f"{rate:g}x", v[f"play_{rate:g}x"],
                     float("nan"), float("nan"), v[f"dropped_{rate:g}x"], fps * rate)
    play.notes.append("App: new frames drawn on each stream's canvas (`window.__deepepil_player.displayed`) per "
                      "second of wall-clock time between the play and pause clicks. `<video>`: distinct frames "
                      "presented (`requestVideoFrameCallback` media times) per second; its skipped column is "
                      "`droppedVideoFrames`.")

    seek = Table(f"Seek to display, {n_seeks} random frames (seed 0), a 300 ms pause between seeks",
                 ["what", "p50 ms", "p95 ms", "max ms", "p50 vs app IR", "p95 vs app IR"])
    base = results[("seek", "ir")]["ms"]
    for view in ("ir", "all"):
        ms = results[("seek", view)]["ms"]
        seek.add("app, IR only" if view == "ir" else "app, all streams (until all three show the frame)",
                 pct(ms, 50), pct(ms, 95), float(ms.max()), pct(ms, 50) / pct(base, 50), pct(ms, 95) / pct(base, 95))
    for gop in BASELINE_GOPS:
        ms = results[("video", gop)]["seek_ms"]
        wrong = results[("video", gop)]["seek_wrong_frames"]
        seek.add(f"`<video>` H.264, GOP {gop}" + (f" ({wrong} landed on a neighbouring frame)" if wrong else ""),
                 pct(ms, 50), pct(ms, 95), float(ms.max()), pct(ms, 50) / pct(base, 50), pct(ms, 95) / pct(base, 95))
    player_ms = results[("seek", "ir")]["player_ms"]
    seek.notes.append("App: from setting the playhead (the scrub bar's input event) to the animation frame on which "
                      "the player reports the frame drawn (`shown`); the player's own measure "
                      f"(`lastSeekMs`, IR only) gives p50 {pct(player_ms, 50):.0f} / p95 {pct(player_ms, 95):.0f} ms. "
                      "`<video>`: from setting `currentTime` to the `requestVideoFrameCallback` of the new frame. "
                      "Both are polled on animation frames (60 Hz).")

    fit, zoomed = results[("redraw", n_mois)]
    empty = results[("redraw", 0)]
    redraw = Table("Timeline redraw (`window.__deepepil_timeline.redraw()`, 60 redraws each, rasterization included)",
                   ["MOIs", "view", "median ms", "p95 ms"])
    redraw.add(0, "whole recording", float(np.median(empty)), pct(empty, 95))
    redraw.add(n_mois, "whole recording", float(np.median(fit)), pct(fit, 95))
    redraw.add(n_mois, "zoomed in 6.5x", float(np.median(zoomed)), pct(zoomed, 95))

    ir1 = results[("play", "ir", 1.0)]["fps"]["ir"]
    seek95 = pct(base, 95)
    targets = Table("Targets", ["target", "measured", "wanted", ""])
    ir1_skipped = results[("play", "ir", 1.0)]["skipped"].get("ir", 0)
    # a 30 fps recording at 1x cannot show more than 30 frames/s: the target is every frame shown
    for t in (Target("IR frames displayed per second at 1x (30 fps recording)",
                     f"{ir1:.1f}/s, {ir1_skipped} skipped", ">= 30/s: every frame",
                     ir1_skipped == 0 and ir1 >= 29.5),
              Target("seek-to-display p95 (IR)", f"{seek95:.0f} ms", "<= 100 ms", seek95 <= 100),
              Target(f"timeline redraw with {n_mois} MOIs, p95", f"{max(pct(fit, 95), pct(zoomed, 95)):.1f} ms",
                     "<= 16 ms (one frame at 60 Hz)", max(pct(fit, 95), pct(zoomed, 95)) <= 16)):
        targets.add(*t.row())
    return "\n".join(out) + "\n" + "\n".join(t.markdown() for t in (targets, play, seek, redraw))


if __name__ == "__main__":
    sys.exit(main())
