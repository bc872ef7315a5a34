"""Benchmark data: one synthetic recording, rendered once and cached in ``.bench-data/``.

Everything is derived from one :class:`~deepepil.synthetic.recording.SyntheticRecording`
and cached under a folder named by its parameters (``.bench-data/store/<key>/``)::

    source.mkv            Azure Kinect-style MKV (write_azure_kinect_mkv): MJPEG colour,
                          b16g depth and IR -- what an acquisition system exports
    store/default-<layout hash>/rec.zarr
                          the MKV ingested with the checkout's default StoreLayout (all
                          streams); a new default layout gets a new store
    variants/<layout hash>/rec.zarr
                          ir + depth ingested with other chunk/shard/codec layouts
    mp4/rgb.mp4           H.264 (libx264, GOP 250, crf 18, yuv420p) of the store's rgb frames
    mp4/ir.mp4, depth.mp4 H.264 8-bit grey of ir / depth mapped linearly over the store's
                          display range (H.264 in PyAV's libx264 cannot hold 16 bits)
    rgb_original.npy      a few colour frames as rendered, before any JPEG (for PSNR)
    meta.json             parameters, timings of each build step, source hashes

Each piece is written aside and renamed into place, so an interrupted build resumes
where it stopped. ``rebuild=True`` removes the folder first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from deepepil.recordings.source import Frame, RecordingSource

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench-data"
#: Bump when the way the cached data is made changes.
DATA_VERSION = 1
MP4_GOP = 250
MP4_CRF = 18
#: Layouts of the ir+depth variant stores, by name: StoreLayout fields that differ from the
#: default layout. A variant equal to the default layout is served by the main store.
VARIANT_CHANGES: dict[str, dict[str, Any]] = {
    "c1-s8": {"frames_per_chunk": 1, "frames_per_shard": 8},
    "c1-s32": {"frames_per_chunk": 1, "frames_per_shard": 32},
    "c1-s64": {"frames_per_chunk": 1, "frames_per_shard": 64},
    "c4-s32": {"frames_per_chunk": 4, "frames_per_shard": 32},
    "c30-s30": {"frames_per_chunk": 30, "frames_per_shard": 30},
    "c1-s32-zstd": {"frames_per_chunk": 1, "frames_per_shard": 32, "depth_codec": "zstd"},
    "c1-s32-pred2d": {"frames_per_chunk": 1, "frames_per_shard": 32, "depth_codec": "pred2d-zstd"},
}


def variant_layout(name: str) -> Any:
    """The StoreLayout of variant ``name``: the default layout with the variant's changes."""
    from deepepil.recordings.store import DEFAULT_LAYOUT

    return dataclasses.replace(DEFAULT_LAYOUT, **VARIANT_CHANGES[name])


def variant_names() -> list[str]:
    """Variants with distinct layouts (chunking variants use the default codec; codec variants differ)."""
    seen: dict[Any, str] = {}
    for name in VARIANT_CHANGES:
        seen.setdefault(variant_layout(name), name)
    return list(seen.values())


def _layout_key(layout: Any) -> str:
    text = json.dumps(layout.describe(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


Log = Callable[[str], None]


def log(message: str) -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class DataParams:
    """What recording to render: size name, duration, seed."""

    size: str = "full"
    seconds: float = 120.0
    seed: int = 0
    patient_index: int = 0
    recording_index: int = 0
    rgb_original_frames: int = 24

    @property
    def key(self) -> str:
        return f"{self.size}-{self.seconds:g}s-seed{self.seed}-p{self.patient_index}r{self.recording_index}-v{DATA_VERSION}"


def _source_hashes() -> dict[str, str]:
    """Short sha256 of each source file that shapes the rendered frames and the MKV.

    (The stores are keyed by their layout, so a new default layout gets a new store.)
    """
    out = {}
    for part in ("synthetic", "recordings/readers"):
        for path in sorted((ROOT / "deepepil" / part).glob("*.py")):
            out[path.relative_to(ROOT).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return out


def make_source(params: DataParams) -> Any:
    """The synthetic recording (frames rendered on demand)."""
    from deepepil.synthetic.patient import make_cohort_profiles
    from deepepil.synthetic.recording import make_recording

    patient = make_cohort_profiles(params.patient_index + 1, seed=params.seed)[params.patient_index]
    return make_recording(patient, params.recording_index, seconds=params.seconds, size=params.size,
                          seed=params.seed)


# -- rendering on all cores ------------------------------------------------------------

_WORKER_SOURCE: Any = None


def _worker_init(params: DataParams) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = make_source(params)


def _worker_render(index: int) -> tuple[int, dict[str, np.ndarray]]:
    frames = _WORKER_SOURCE.render_frame(index)
    return index, {k: np.array(v) for k, v in frames.items()}


class ParallelRenderSource(RecordingSource):
    """A RecordingSource facade over a synthetic recording that renders frames in worker processes.

    Frames are bit-identical to the single-process ones (each frame is rendered from
    ``(seed, patient, recording, frame)``); this only spreads the work over the cores.
    """

    def __init__(self, params: DataParams, processes: int | None = None, progress: Log | None = None) -> None:
        self._source = make_source(params)
        self.params = params
        self.streams = self._source.streams
        self.calibration = self._source.calibration
        self.attrs = self._source.attrs
        self.path = self._source.path
        self.num_frames = self._source.num_frames
        self._processes = processes or os.cpu_count() or 1
        self._progress = progress
        self._pool: Any = None
        self._results: Iterator[tuple[int, dict[str, np.ndarray]]] | None = None
        self._buffer: dict[int, dict[str, np.ndarray]] = {}

    def _start(self) -> None:
        ctx = multiprocessing.get_context("forkserver")
        self._pool = ctx.Pool(self._processes, initializer=_worker_init, initargs=(self.params,))
        self._results = self._pool.imap(_worker_render, range(self.num_frames), chunksize=4)
        self._started_at = time.perf_counter()

    def _get(self, index: int, stream: str) -> np.ndarray:
        if self._results is None:
            self._start()
        while index not in self._buffer:
            i, frames = next(self._results)  # type: ignore[arg-type]
            self._buffer[i] = frames
            if self._progress and (i + 1) % 300 == 0:
                rate = (i + 1) / (time.perf_counter() - self._started_at)
                self._progress(f"    rendered {i + 1}/{self.num_frames} frames ({rate:.1f} frames/s)")
        frames = self._buffer[index]
        data = frames.pop(stream)
        if not frames:
            del self._buffer[index]
        return data

    def iter_frames(self, stream: str) -> Iterator[Frame]:
        fps = self.streams[stream].fps
        for i in range(self.num_frames):
            yield Frame(i, i / fps, self._get(i, stream))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


# -- the cached data ---------------------------------------------------------------------


class BenchData:
    """Paths of the cached benchmark data for ``params`` (see the module docstring)."""

    def __init__(self, params: DataParams, cache: Path = CACHE) -> None:
        self.params = params
        self.root = cache / "store" / params.key
        self.mkv = self.root / "source.mkv"
        from deepepil.recordings.store import DEFAULT_LAYOUT

        #: Ingested with the default layout of the checkout (all streams).
        self.store = self.root / "store" / f"default-{_layout_key(DEFAULT_LAYOUT)}" / "rec.zarr"
        self.rgb_original = self.root / "rgb_original.npy"
        self.meta_path = self.root / "meta.json"

    def variant(self, name: str) -> Path:
        from deepepil.recordings.store import DEFAULT_LAYOUT

        layout = variant_layout(name)
        if layout == DEFAULT_LAYOUT:
            return self.store
        return self.root / "variants" / _layout_key(layout) / "rec.zarr"

    def mp4(self, stream: str) -> Path:
        return self.root / "mp4" / f"{stream}.mp4"

    @property
    def meta(self) -> dict[str, Any]:
        if self.meta_path.exists():
            return json.loads(self.meta_path.read_text())
        return {}

    def _update_meta(self, **items: Any) -> None:
        meta = self.meta
        meta.update(items)
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tmp, self.meta_path)

    def _step_time(self, name: str, seconds: float) -> None:
        steps = self.meta.get("build_seconds", {})
        steps[name] = round(seconds, 1)
        self._update_meta(build_seconds=steps)


def gray8_mapping(stream: str, display: dict[str, Any]) -> tuple[float, float]:
    """The linear 16-bit -> 8-bit range for a grey MP4 of ``stream``, from a store's display ranges.

    The range each cached MP4 was made with is kept in meta.json (``mp4_gray8_ranges``).
    """
    if stream == "depth":
        lo, hi = display.get("depth_range_mm", (500.0, 4500.0))
    else:
        lo, hi = display.get("ir_range", (0.0, 3000.0))
    return float(lo), float(hi)


def to_gray8(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """uint16 -> uint8 linearly over ``[lo, hi]``, clipped."""
    x = (frame.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def write_gray_mp4(frames: Iterator[np.ndarray], path: Path, fps: float, gop: int = MP4_GOP,
                   crf: int = MP4_CRF) -> None:
    """8-bit grey frames -> H.264 MP4 with libx264 (pix_fmt gray), written aside then renamed."""
    import av

    tmp = path.with_name(f".{path.name}.partial")
    time_base = Fraction(1, 90000)
    container = av.open(str(tmp), "w", format="mp4")
    stream = None
    try:
        for i, frame in enumerate(frames):
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001000),
                                              options={"crf": str(crf)})
                stream.height, stream.width = frame.shape
                stream.pix_fmt = "gray"
                stream.codec_context.time_base = time_base
                stream.codec_context.gop_size = gop
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            vf.time_base = time_base
            vf.pts = round(i / fps / time_base)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():  # type: ignore[union-attr]
            container.mux(packet)
        container.close()
    except BaseException:
        container.close()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def prepare(params: DataParams, *, variants: bool = True, rebuild: bool = False, say: Log = log) -> BenchData:
    """Build whatever of the cached data for ``params`` is missing; return its paths."""
    import deepepil
    from deepepil.recordings.readers.azure_kinect import write_azure_kinect_mkv
    from deepepil.recordings.readers.video import write_video
    data = BenchData(params)
    if rebuild and data.root.exists():
        say(f"  removing {data.root}")
        shutil.rmtree(data.root)
    data.root.mkdir(parents=True, exist_ok=True)
    hashes = _source_hashes()
    old = data.meta.get("source_hashes")
    if old and old != hashes:
        changed = sorted(k for k in set(old) | set(hashes) if old.get(k) != hashes.get(k))
        say(
            f"  note: the cached data was made before changes to {', '.join(changed) or 'deepepil'}; "
            "rerun with --rebuild to regenerate it if they change the frames or the store"
        )
    if not data.meta:
        data._update_meta(params=asdict(params), source_hashes=hashes, data_version=DATA_VERSION)

    if not data.mkv.exists():
        say(f"  rendering {params.size} {params.seconds:g} s synthetic recording -> {data.mkv.name} "
            f"(once; {os.cpu_count()} processes)")
        t0 = time.perf_counter()
        source = ParallelRenderSource(params, progress=say)
        try:
            write_azure_kinect_mkv(source, data.mkv)  # type: ignore[arg-type]
        finally:
            source.close()
        data._step_time("render_and_write_mkv", time.perf_counter() - t0)
        say(f"    done in {time.perf_counter() - t0:.0f} s ({data.mkv.stat().st_size / 1e9:.2f} GB)")

    if not data.rgb_original.exists():
        say(f"  rendering {params.rgb_original_frames} original colour frames (for PSNR)")
        source = make_source(params)
        picks = np.linspace(0, source.num_frames - 1, params.rgb_original_frames).round().astype(int)
        frames = np.stack([source.render_frame(int(i), ("rgb",))["rgb"] for i in picks])
        tmp = data.rgb_original.with_name(".rgb_original.partial.npy")
        np.save(tmp, frames)
        os.replace(tmp, data.rgb_original)

    if not data.store.exists():
        say("  ingesting the MKV with the default layout (all streams)")
        t0 = time.perf_counter()
        deepepil.ingest(data.mkv, data.store.parent, name="rec", progress=sys.stderr.isatty())
        data._step_time("ingest_default", time.perf_counter() - t0)
        say(f"    done in {time.perf_counter() - t0:.0f} s")

    ds = deepepil.open_recording(data.store)
    display = dict(ds.attrs.get("display", {}))
    fps = float(ds.attrs["fps"])
    data._update_meta(display=display, num_frames=int(ds.sizes["time"]), fps=fps)

    data.mp4("rgb").parent.mkdir(exist_ok=True)
    if not data.mp4("rgb").exists():
        say("  encoding rgb.mp4 (libx264, GOP 250, crf 18) from the store's rgb frames")
        t0 = time.perf_counter()
        def rgb_frames() -> Iterator[np.ndarray]:
            step = 32
            n = ds.sizes["time"]
            for start in range(0, n, step):
                block = ds["rgb"].isel(time=slice(start, start + step)).values
                yield from block
                if (start // step) % 20 == 19:
                    say(f"    {start + step}/{n} frames ({(start + step) / (time.perf_counter() - t0):.1f} frames/s)")

        write_video(rgb_frames(), data.mp4("rgb"), fps, codec="libx264", gop=MP4_GOP, crf=MP4_CRF,
                    num_frames=ds.sizes["time"])
        data._step_time("encode_rgb_mp4", time.perf_counter() - t0)
    for stream in ("ir", "depth"):
        if not data.mp4(stream).exists():
            say(f"  encoding {stream}.mp4 (libx264 8-bit grey, GOP 250, crf 18)")
            t0 = time.perf_counter()
            lo, hi = gray8_mapping(stream, display)

            def gray_frames(stream: str = stream, lo: float = lo, hi: float = hi) -> Iterator[np.ndarray]:
                n = ds.sizes["time"]
                for start in range(0, n, 32):
                    for f in ds[stream].isel(time=slice(start, start + 32)).values:
                        yield to_gray8(f, lo, hi)

            write_gray_mp4(gray_frames(), data.mp4(stream), fps)
            ranges = data.meta.get("mp4_gray8_ranges", {})
            ranges[stream] = [lo, hi]
            data._update_meta(mp4_gray8_ranges=ranges)
            data._step_time(f"encode_{stream}_mp4", time.perf_counter() - t0)

    if variants:
        for name in variant_names():
            path = data.variant(name)
            if path.exists():
                continue
            layout = variant_layout(name)
            say(f"  ingesting ir+depth with layout {name} ({layout.describe()})")
            t0 = time.perf_counter()
            deepepil.ingest(data.mkv, path.parent, name="rec", layout=layout, streams=["ir", "depth"],
                            progress=sys.stderr.isatty())
            data._step_time(f"ingest_{name}", time.perf_counter() - t0)
    return data


def warm(*paths: Path) -> float:
    """Read files (or every file under folders) once so they sit in the OS page cache; seconds taken.

    The bench VM reclaims page cache that was not touched for a while (DAMON pageout),
    so every method is measured right after warming the files it reads.
    """
    t0 = time.perf_counter()
    for path in paths:
        files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
        for f in files:
            with open(f, "rb", buffering=0) as fh:
                while fh.read(1 << 23):
                    pass
    return time.perf_counter() - t0


def open_mkv(data: BenchData) -> Any:
    from deepepil.recordings.readers.azure_kinect import AzureKinectSource

    return AzureKinectSource(str(data.mkv))
