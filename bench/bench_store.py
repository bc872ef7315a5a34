"""Recording-store benchmarks, each against what a user would otherwise do, in one run.

    python bench/bench_store.py            # full size (rgb 1920x1080, ir/depth 512x424), 2 minutes
    python bench/bench_store.py --quick    # small size, 20 s: a 1-2 minute smoke run

The first full run renders and caches the data in ``.bench-data/`` (see ``bench/_data.py``;
about 10-15 minutes on 2 cores); later runs reuse it. Sections (``--only``):

random    one random frame: store (xarray and zarr) vs seek + decode in an H.264 MP4 (PyAV)
clips     64-frame clips: store vs seek + sequential MP4 decode
ingest    Azure Kinect MKV -> store, as a multiple of real time; where the time goes
codecs    lossless ir/depth codecs: ratio and speed (blosc-zstd on raw vs pred2d + zstd, lz4)
chunking  frames per chunk / per shard: random-frame p95 and clip frames/s
rgb       rgb codec: JPEG q75/90/95 vs lossless blosc-zstd (bytes, speed, PSNR)
memory    peak RSS of opening a recording and reading frames, in a fresh process

Results print as they come and are written as markdown (``--out``, default
``.bench-data/results/bench_store-<full|quick>.md``) plus JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data  # noqa: E402
from _measure import (  # noqa: E402
    LeanFrameReader,
    Mp4Frames,
    Table,
    Target,
    cpu_seconds,
    dir_bytes,
    machine,
    p50_p95_ms,
    psnr,
    time_calls,
)

SECTIONS = ("random", "clips", "ingest", "codecs", "chunking", "rgb", "memory")
CLIP_FRAMES = 64
STREAMS = ("ir", "depth", "rgb")
say = _data.log


class Run:
    """What every section needs: the data, the indices, the results collected so far."""

    def __init__(self, args: argparse.Namespace, data: _data.BenchData) -> None:
        import deepepil

        self.args = args
        self.data = data
        self.ds = deepepil.open_recording(data.store)
        self.num_frames = int(self.ds.sizes["time"])
        self.fps = float(self.ds.attrs["fps"])
        rng = np.random.default_rng(args.seed)
        self.indices = rng.choice(self.num_frames, size=min(args.n_random, self.num_frames), replace=False)
        self.clip_starts = rng.integers(0, self.num_frames - CLIP_FRAMES, size=args.n_clips)
        self.tables: list[Table] = []
        self.targets: list[Target] = []
        self.results: dict[str, Any] = {}

    def table(self, table: Table) -> None:
        self.tables.append(table)
        print()
        print(table.markdown(), flush=True)


def _zarr_array(path: Path, stream: str) -> Any:
    import zarr

    group = zarr.open_group(zarr.storage.LocalStore(path, read_only=True), mode="r")
    return group[stream]


def _shipped_pillow_cache() -> bool:
    """Whether importing deepepil's codecs turns Pillow's block cache on (Pillow's own default: off)."""
    from PIL import Image

    import deepepil.recordings.codecs  # noqa: F401

    return Image.core.get_blocks_max() > 0


SHIPPED_PILLOW_CACHE = _shipped_pillow_cache()
#: The Pillow setting the what-if rows try: the opposite of what deepepil ships.
WHAT_IF_PILLOW = "off" if SHIPPED_PILLOW_CACHE else "on"
PILLOW_CACHE_LABEL = f"JPEG q{{q}}, Pillow block cache {WHAT_IF_PILLOW} (what-if)"


class pillow_block_cache:
    """Within the block, Pillow's block cache is on (16 blocks kept for reuse) or off; None leaves it."""

    def __init__(self, on: bool | None = True) -> None:
        self.on = on

    def __enter__(self) -> None:
        from PIL import Image

        self.before = Image.core.get_blocks_max()
        if self.on is not None:
            Image.core.set_blocks_max(16 if self.on else 0)

    def __exit__(self, *exc: object) -> None:
        from PIL import Image

        Image.core.set_blocks_max(self.before)


# -- 1. random frames ---------------------------------------------------------------------


def _read_frame_fn() -> Any:
    """``deepepil.recordings.framereader.read_frame`` (the display path), or None in older checkouts."""
    try:
        from deepepil.recordings.framereader import read_frame
    except ImportError:
        return None
    return read_frame


def bench_random(run: Run) -> None:
    import deepepil

    idx = run.indices
    t0 = time.perf_counter()
    ds = deepepil.open_recording(run.data.store)
    open_ms = (time.perf_counter() - t0) * 1e3
    display = run.data.meta.get("display", {})
    mp4_ranges = run.data.meta.get("mp4_gray8_ranges", {})
    read_frame = _read_frame_fn()
    columns = ["stream", "frame", "xarray p50 / p95 ms", "zarr p50 / p95 ms"]
    if read_frame is not None:
        columns.append("`read_frame` p50 / p95 ms")
    columns += ["MP4 seek p50 / p95 ms", "MP4 / xarray (p50 / p95)"]
    if read_frame is not None:
        columns.append("MP4 / `read_frame` (p50 / p95)")
    table = Table(
        f"Random single frame, {len(idx)} random indices (seed {run.args.seed}), same indices for every method",
        columns,
    )
    out: dict[str, Any] = {"open_recording_ms": open_ms}
    for stream in STREAMS:
        var = ds[stream]
        shape = "x".join(str(s) for s in var.shape[1:3][::-1])
        say(f"  random {stream}: store via xarray")
        _data.warm(run.data.store / stream)
        t_xr = time_calls(lambda i: ds[stream].isel(time=i).values, idx)
        say(f"  random {stream}: store via zarr")
        arr = _zarr_array(run.data.store, stream)
        _data.warm(run.data.store / stream)
        t_zarr = time_calls(lambda i: arr[i], idx)
        if read_frame is not None:
            say(f"  random {stream}: store via deepepil read_frame")
            probe = int(idx[0])
            if not np.array_equal(read_frame(ds, stream, probe), ds[stream].isel(time=probe).values):
                raise AssertionError(f"read_frame disagrees with xarray on {stream} frame {probe}")
            _data.warm(run.data.store / stream)
            t_rf = time_calls(lambda i: read_frame(ds, stream, i), idx)
        say(f"  random {stream}: MP4 seek ({len(idx)} seeks)")
        _data.warm(run.data.mp4(stream))
        mp4 = Mp4Frames(run.data.mp4(stream), stream)
        if len(mp4) != run.num_frames:
            raise RuntimeError(f"{mp4.path} has {len(mp4)} frames, the store {run.num_frames}")
        keys = mp4.keyframes()
        t_mp4 = time_calls(mp4.frame, idx)
        # same content? compare a few MP4 frames with the store's (mapped to 8 bit for ir/depth)
        checks = []
        for i in idx[:5]:
            ref = ds[stream].isel(time=int(i)).values
            if stream != "rgb":
                ref = _data.to_gray8(ref, *(mp4_ranges.get(stream) or _data.gray8_mapping(stream, display)))
            checks.append(psnr(mp4.frame(int(i)), ref))
        mp4.close()
        xr50, xr95 = p50_p95_ms(t_xr)
        z50, z95 = p50_p95_ms(t_zarr)
        m50, m95 = p50_p95_ms(t_mp4)
        row = [stream, shape, f"{xr50:.2f} / {xr95:.2f}", f"{z50:.2f} / {z95:.2f}"]
        if read_frame is not None:
            r50, r95 = p50_p95_ms(t_rf)
            row.append(f"{r50:.2f} / {r95:.2f}")
        row += [f"{m50:.0f} / {m95:.0f}", f"{m50 / xr50:.0f}x / {m95 / xr95:.0f}x"]
        if read_frame is not None:
            row.append(f"{m50 / r50:.0f}x / {m95 / r95:.0f}x")
        table.add(*row)
        out[stream] = {
            "xarray_ms": {"p50": xr50, "p95": xr95, "mean": float(t_xr.mean() * 1e3)},
            "zarr_ms": {"p50": z50, "p95": z95, "mean": float(t_zarr.mean() * 1e3)},
            "mp4_seek_ms": {"p50": m50, "p95": m95, "mean": float(t_mp4.mean() * 1e3)},
            "speedup_p50": m50 / xr50, "speedup_p95": m95 / xr95,
            "mp4_keyframes": len(keys), "mp4_psnr_vs_store_db": float(np.mean(checks)),
            "mp4_bytes": run.data.mp4(stream).stat().st_size,
        }
        if read_frame is not None:
            out[stream]["read_frame_ms"] = {"p50": r50, "p95": r95, "mean": float(t_rf.mean() * 1e3)}
        if stream in ("ir", "depth"):
            run.targets.append(Target(f"random {stream} frame p95 (xarray)", f"{xr95:.2f} ms", "<= 5 ms", xr95 <= 5.0))
            run.targets.append(Target(f"random {stream} frame vs MP4 seek, xarray (p50 ratio)", f"{m50 / xr50:.0f}x",
                                      ">= 50x", m50 / xr50 >= 50))
            if read_frame is not None:
                run.targets.append(Target(f"random {stream} frame vs MP4 seek, `read_frame` (p50 ratio)",
                                          f"{m50 / r50:.0f}x", ">= 50x", m50 / r50 >= 50))
    gops = {s: out[s]["mp4_keyframes"] for s in STREAMS}
    table.notes += [
        f"Store: `deepepil.open_recording(path)` once ({open_ms:.0f} ms), then `ds[stream].isel(time=i).values`; "
        "zarr: `zarr.open_group(...)[stream][i]`"
        + ("; `read_frame`: `deepepil.recordings.framereader.read_frame(ds, stream, i)` (shard index + one "
           "chunk, the path `encode_frame` uses for display)" if read_frame is not None else "")
        + ". One untimed warm-up read each. Warm OS page cache for the store "
        "and the MP4 alike: each method's files are read once right before it is timed.",
        "MP4: libx264 crf 18, GOP 250 (x264 adds scene-cut keyframes: "
        + ", ".join(f"{s} {n} keyframes" for s, n in gops.items())
        + f" in {run.num_frames} frames), B-frames on (x264 default preset). One open PyAV container; "
        "`container.seek(pts, stream=s, backward=True)`, decode until `frame.pts == pts`, `to_ndarray()`. "
        "The pts of every frame come from one untimed demux pass.",
        "ir/depth MP4s are 8-bit grey (x264 `pix_fmt=gray`; linear over the display range): H.264 as "
        "shipped with PyAV cannot hold 16 bits, so this baseline is lossy *and* loses 8 bits; the store "
        "is bit-exact 16-bit. Mean PSNR of MP4 frames vs the store's (8-bit-mapped) frames: "
        + ", ".join(f"{s} {out[s]['mp4_psnr_vs_store_db']:.1f} dB" for s in STREAMS) + ".",
    ]
    run.results["random"] = out
    run.table(table)
    _random_what_if(run, ds, out)


def _random_what_if(run: Run, ds: Any, out: dict[str, Any]) -> None:
    """Lighter read paths than the shipped ones, on the same indices (not in deepepil)."""
    idx = run.indices
    read_frame = _read_frame_fn()
    table = Table(
        "What-if: other random-frame paths (same indices; not what deepepil ships)",
        ["path", "stream", "p50 / p95 ms", "same path as shipped, p50 / p95 ms", "MP4 / this (p50)"],
    )
    if read_frame is None:
        for stream in ("ir", "depth"):
            say(f"  random {stream}: lean shard reader (what-if)")
            reader = LeanFrameReader(run.data.store / stream)
            probe = int(idx[0])
            if not np.array_equal(reader.frame(probe), ds[stream].isel(time=probe).values):
                raise AssertionError(f"lean reader disagrees with zarr on {stream} frame {probe}")
            _data.warm(run.data.store / stream)
            p50, p95 = p50_p95_ms(time_calls(reader.frame, idx))
            ref = out[stream]
            table.add("read the shard index + one chunk, numcodecs Blosc + pred2d decode, no zarr", stream,
                      f"{p50:.2f} / {p95:.2f}", f"{ref['xarray_ms']['p50']:.2f} / {ref['xarray_ms']['p95']:.2f}",
                      f"{ref['mp4_seek_ms']['p50'] / p50:.0f}x")
            out[f"{stream}_lean_reader_ms"] = {"p50": p50, "p95": p95}
    paths = [("xarray", "xarray_ms", lambda i: ds["rgb"].isel(time=i).values)]
    if read_frame is not None:
        paths.append(("`read_frame`", "read_frame_ms", lambda i: read_frame(ds, "rgb", i)))
    ref = out["rgb"]
    for name, key, fn in paths:
        say(f"  random rgb: {name}, Pillow block cache {WHAT_IF_PILLOW} (what-if)")
        with pillow_block_cache(not SHIPPED_PILLOW_CACHE):
            _data.warm(run.data.store / "rgb")
            p50, p95 = p50_p95_ms(time_calls(fn, idx))
        setting = "0" if SHIPPED_PILLOW_CACHE else "16"
        table.add(f"{name} with Pillow's block cache {WHAT_IF_PILLOW} (`PIL.Image.core.set_blocks_max({setting})`)",
                  "rgb",
                  f"{p50:.2f} / {p95:.2f}", f"{ref[key]['p50']:.2f} / {ref[key]['p95']:.2f}",
                  f"{ref['mp4_seek_ms']['p50'] / p50:.0f}x")
        out[f"rgb_{key}_pillow_block_cache"] = {"p50": p50, "p95": p95}
    table.notes.append(
        "Pillow's block cache is off by Pillow's default (`PILLOW_BLOCKS_MAX` unset): every 1080p image Pillow "
        "decodes then gets fresh memory from the OS; with the cache on, freed blocks are reused. "
        + ("`deepepil.recordings.codecs` turns it on at import (16 blocks); the row shows the cost without."
           if SHIPPED_PILLOW_CACHE else "deepepil leaves it off; the row shows what turning it on would give.")
        + ("" if read_frame is not None else " The lean reader (`bench/_measure.py: LeanFrameReader`) reads "
           "the shard index and one chunk directly, without zarr's event loop and thread hops.")
    )
    run.table(table)


# -- 2. clips --------------------------------------------------------------------------------


def bench_clips(run: Run) -> None:
    import deepepil

    ds = deepepil.open_recording(run.data.store)
    starts = run.clip_starts
    table = Table(
        f"Sequential {CLIP_FRAMES}-frame clip from a random start, {len(starts)} clips, median frames/s",
        ["stream", "store xarray frames/s", "store zarr frames/s", "MP4 seek + decode frames/s", "store / MP4"],
    )
    out: dict[str, Any] = {}
    for stream in STREAMS:
        say(f"  clips {stream}")
        _data.warm(run.data.store / stream)
        t_xr = time_calls(lambda s: ds[stream].isel(time=slice(s, s + CLIP_FRAMES)).values, starts)
        arr = _zarr_array(run.data.store, stream)
        t_zarr = time_calls(lambda s: arr[s : s + CLIP_FRAMES], starts)
        _data.warm(run.data.mp4(stream))
        mp4 = Mp4Frames(run.data.mp4(stream), stream)
        t_mp4 = time_calls(lambda s: mp4.clip(s, CLIP_FRAMES), starts)
        mp4.close()
        fx, fz, fm = (CLIP_FRAMES / float(np.median(t)) for t in (t_xr, t_zarr, t_mp4))
        table.add(stream, fx, fz, fm, f"{fx / fm:.1f}x")
        out[stream] = {"xarray_fps": fx, "zarr_fps": fz, "mp4_fps": fm, "ratio": fx / fm}
    table.notes.append(
        "Store: `ds[stream].isel(time=slice(s, s + 64)).values`. MP4: one seek to the clip's first frame "
        "(decoding from the keyframe before it), then 64 frames decoded in order, each `to_ndarray()`."
    )
    run.results["clips"] = out
    run.table(table)


# -- 3. ingest ---------------------------------------------------------------------------------


def _ingest_once(mkv: Path, out_dir: Path, streams: list[str] | None, layout: Any = None) -> dict[str, float]:
    import deepepil
    from deepepil.recordings.store import DEFAULT_LAYOUT

    shutil.rmtree(out_dir, ignore_errors=True)
    c0, t0 = cpu_seconds(), time.perf_counter()
    path = deepepil.ingest(mkv, out_dir, name="bench", streams=streams, progress=False,
                           layout=layout or DEFAULT_LAYOUT)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    duration = float(deepepil.open_recording(path).attrs["duration_seconds"])
    store_bytes = dir_bytes(path)
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"wall_s": wall, "cpu_s": cpu, "duration_s": duration, "realtime": duration / wall,
            "store_bytes": store_bytes}


def _ingest_stages(run: Run, out_dir: Path) -> dict[str, float]:
    """Wall seconds of each stage of an ingest, each measured on its own.

    Reading and hashing run over the whole MKV; encoding and writing run on 256 frames
    (4 blocks of 64 spread over the recording; 64 for rgb) and are scaled to the whole.
    """
    import zarr

    from deepepil.recordings.ingest import hash_source
    from deepepil.recordings.store import DEFAULT_LAYOUT, _sha256, _store_files, create_stream_array

    stages: dict[str, float] = {}
    n = run.num_frames
    for streams in (("ir", "depth"), ("rgb",)):
        src = _data.open_mkv(run.data)
        t0 = time.perf_counter()
        for _frames in zip(*(src.iter_frames(s) for s in streams)):
            pass
        stages["read_" + "_".join(streams) + "_s"] = time.perf_counter() - t0
        src.close()
    t0 = time.perf_counter()
    hash_source(run.data.mkv)
    stages["hash_source_s"] = time.perf_counter() - t0
    per_shard = DEFAULT_LAYOUT.frames_per_shard
    for streams, blocks in ((("ir", "depth"), 4), (("rgb",), 1)):
        sample = {s: _sample_blocks(run, s, blocks) for s in streams}
        m = len(sample[streams[0]])
        for target in ("memory", "disk"):
            shutil.rmtree(out_dir, ignore_errors=True)
            store = zarr.storage.MemoryStore() if target == "memory" else zarr.storage.LocalStore(out_dir)
            group = zarr.open_group(store, mode="w", zarr_format=3)
            arrays = {s: create_stream_array(group, s, m, sample[s].shape[1:], str(sample[s].dtype))
                      for s in streams}
            t0 = time.perf_counter()
            for start in range(0, m, per_shard):
                for s in streams:
                    arrays[s][start : start + per_shard] = sample[s][start : start + per_shard]
            stages[f"encode_{'_'.join(streams)}_{target}_s"] = (time.perf_counter() - t0) / m * n
        t0 = time.perf_counter()
        for f in _store_files(out_dir):
            _sha256(f)
        stages[f"manifest_{'_'.join(streams)}_s"] = (time.perf_counter() - t0) / m * n
    shutil.rmtree(out_dir, ignore_errors=True)
    return stages


def _py_spy() -> str | None:
    return os.environ.get("PY_SPY") or shutil.which("py-spy") or (
        "/tmp/pyspy/bin/py-spy" if Path("/tmp/pyspy/bin/py-spy").exists() else None)


#: Leaf frames where a thread waits for work rather than doing it.
_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "EpollSelector.select (selectors.py",
                "Condition.wait (threading.py", "Event.wait (threading.py", "_wait_for_tstate_lock")


def _thread_role(name: str) -> str:
    if "MainThread" in name:
        return "main"
    if "zarr_io" in name:
        return "zarr event loop"
    if "asyncio_" in name:
        return "zarr codec threads"
    if "hash" in name:
        return "source hash"
    return "other"


def _profile_ingest(run: Run, out_dir: Path, py_spy: str, streams: list[str] | None) -> Table:
    """py-spy (all threads, 100 Hz) over an ingest in a child process: busy time by function and thread."""
    shutil.rmtree(out_dir, ignore_errors=True)
    what = "+".join(streams) if streams else "all"
    raw = out_dir.parent / f"ingest-profile-{what}.txt"
    code = (
        "import deepepil, sys; deepepil.ingest(sys.argv[1], sys.argv[2], name='prof', "
        f"streams={streams!r}, progress=False)"
    )
    subprocess.run(
        [py_spy, "record", "--format", "raw", "--rate", "100", "--threads", "--idle", "--output", str(raw), "--",
         sys.executable, "-c", code, str(run.data.mkv), str(out_dir)],
        check=True, capture_output=True,
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    busy: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    role_busy: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if len(frames) < 2:
            continue
        k = int(count)
        role = _thread_role(frames[0])
        roles[role] += k
        name, _, where = frames[-1].partition(" (")
        where = where.rstrip(")").split("site-packages/")[-1].split(str(_data.ROOT) + "/")[-1].rsplit(":", 1)[0]
        leaf = f"{name} ({where}"
        if leaf.startswith(_IDLE_LEAVES) or "importlib" in where:
            continue
        busy[f"`{name}` ({where}) [{role}]"] += k
        role_busy[role] += k
    total_busy = sum(busy.values())
    table = Table(
        f"Where an ingest of {what} streams spends its time (py-spy, all threads, busy samples by function)",
        ["function (file) [thread]", "share of busy samples"],
    )
    for name, k in busy.most_common(12):
        table.add(name, f"{100 * k / total_busy:.1f} %")
    table.notes.append(
        "Busy = not waiting for work (thread-pool workers waiting on their queue, the event loop in select, "
        "the main thread waiting for zarr and imports are left out). Busy share per thread: "
        + ", ".join(f"{r} {100 * role_busy[r] / max(roles[r], 1):.0f} % of its samples"
                    for r in ("main", "zarr event loop", "zarr codec threads", "source hash") if roles[r])
        + f". Raw stacks: `{raw.relative_to(_data.ROOT)}`."
    )
    return table


def bench_ingest(run: Run) -> None:
    from deepepil.recordings.store import DEFAULT_LAYOUT

    tmp = _data.CACHE / "tmp" / "ingest"
    table = Table(
        f"Ingest from the Azure Kinect MKV ({run.num_frames} frames, "
        f"{run.data.mkv.stat().st_size / 1e9:.2f} GB) with the default layout",
        ["streams", "wall s", "recording s", "x real time", "CPU s / wall s", "store MB"],
    )
    out: dict[str, Any] = {}
    w, h = run.ds["rgb"].shape[2], run.ds["rgb"].shape[1]
    all_label = f"all (rgb {w}x{h} JPEG q90)"
    from deepepil.recordings.store import StoreLayout

    other = "zstd" if DEFAULT_LAYOUT.depth_codec == "pred2d-zstd" else "pred2d-zstd"
    layouts = [("ir + depth", ["ir", "depth"], None), (all_label, None, None)]
    for codec, level in ((other, DEFAULT_LAYOUT.zstd_level), ("zstd", 3)):
        alt = StoreLayout(depth_codec=codec, zstd_level=level)  # type: ignore[arg-type]
        if alt != DEFAULT_LAYOUT:
            layouts.append((f'ir + depth, `StoreLayout(depth_codec="{codec}", zstd_level={level})`',
                            ["ir", "depth"], alt))
    for label, streams, layout in layouts:
        say(f"  ingest {label}")
        r = _ingest_once(run.data.mkv, tmp, streams, layout)
        table.add(label, r["wall_s"], r["duration_s"], f"{r['realtime']:.1f}x", r["cpu_s"] / r["wall_s"],
                  r["store_bytes"] / 1e6)
        out[label] = r
    ird = out["ir + depth"]["realtime"]
    run.targets.append(Target("ingest ir+depth, x real time (2 cores)", f"{ird:.1f}x", ">= 3x", ird >= 3.0))
    table.notes.append(
        f"`deepepil.ingest(mkv, store, streams=[...])`: demux + decode, frame checks, {_codec_label(DEFAULT_LAYOUT)} "
        "(rgb: JPEG decode + re-encode), sharded zarr writes, source sha256 in a thread, manifest, publish. "
        "CPU s / wall s near 2 means both cores are busy. The stores are written with zarr's "
        f"`write_empty_chunks={SHIPPED_WRITES_EMPTY_CHUNKS}`, as `create_stream_array` sets it."
    )
    run.table(table)

    say("  ingest stages, each measured alone")
    st = _ingest_stages(run, tmp)
    wall = {"ir_depth": out["ir + depth"]["wall_s"], "all": out[all_label]["wall_s"]}
    dur = out["ir + depth"]["duration_s"]
    stages = Table(
        "Ingest stage by stage, each measured alone (encode/write: 256 ir/depth and 64 rgb frames, scaled "
        "to the recording)",
        ["stage", "s", "share of ir+depth ingest wall", "share of all-streams ingest wall",
         "x real time if only this"],
    )
    rows = (
        ("read_ir_depth_s", "ir+depth: demux MKV, b16g -> uint16", True),
        ("encode_ir_depth_memory_s", f"ir+depth: {_codec_label(DEFAULT_LAYOUT)}, sharded (zarr, to memory)", True),
        ("encode_ir_depth_disk_s", "ir+depth: same, to disk", True),
        ("manifest_ir_depth_s", "ir+depth: sha256 of the written files (manifest)", True),
        ("read_rgb_s", "rgb: demux MKV, JPEG decode (Pillow)", False),
        ("encode_rgb_memory_s", "rgb: JPEG q90 encode, sharded (zarr, to memory)", False),
        ("encode_rgb_disk_s", "rgb: same, to disk", False),
        ("manifest_rgb_s", "rgb: sha256 of the written files (manifest)", False),
        ("hash_source_s", "sha256 of the source MKV (a thread beside the ingest)", True),
    )
    for key, label, in_ir_depth in rows:
        stages.add(label, st[key], f"{100 * st[key] / wall['ir_depth']:.0f} %" if in_ir_depth else "",
                   f"{100 * st[key] / wall['all']:.0f} %", f"{dur / st[key]:.1f}x")
    out["stages"] = st
    run.table(stages)
    if run.args.prototypes:
        import _ingest_prototype as proto

        table = Table(
            "Ingest prototypes (what-if, not in deepepil): x real time vs the real ingest above",
            ["variant", "ir + depth", all_label],
        )
        table.add("`deepepil.ingest` as shipped", f"{out['ir + depth']['realtime']:.1f}x",
                  f"{out[all_label]['realtime']:.1f}x")
        for key, label, fn in (
            *(() if SHIPPED_WRITES_EMPTY_CHUNKS else (("write_empty_chunks", "`deepepil.ingest` under `zarr.config.set({\"array.write_empty_chunks\": True})`",
             proto.ingest_write_empty_chunks),)),
            *(() if SHIPPED_PILLOW_CACHE else (
                ("pillow_block_cache", "`deepepil.ingest` with Pillow's block cache on (`set_blocks_max(16)`)",
                 proto.ingest_pillow_block_cache),)),
            ("pipelined", "read/decode of shard k+1 overlapped with the zarr write of shard k, "
             "(+ write_empty_chunks=True, Pillow block cache on)", proto.ingest_pipelined),
        ):
            cells = []
            for streams in (["ir", "depth"], None):
                if key == "pillow_block_cache" and streams is not None:
                    cells.append("(no Pillow)")
                    continue
                say(f"  prototype {key}: {streams or 'all streams'}")
                wall = fn(run.data.mkv, tmp, streams)
                out[f"prototype_{key}_{'ir_depth' if streams else 'all'}_realtime"] = dur / wall
                cells.append(f"{dur / wall:.1f}x")
            table.add(label, *cells)
        table.notes.append(
            "zarr's default `write_empty_chunks=False` compares every inner chunk and every whole shard with the "
            "fill value (`np.array_equal`) on zarr's single event-loop thread before encoding it"
            + (" (the shipped ingest already writes every chunk, so that row is left out)"
               if SHIPPED_WRITES_EMPTY_CHUNKS else "")
            + ". Pillow's block cache: see the rgb codec table. See `bench/_ingest_prototype.py`."
        )
        run.table(table)
    py_spy = _py_spy()
    if py_spy and (ird < 3.0 or run.args.profile_ingest):
        for streams in (["ir", "depth"], None):
            say(f"  profiling an ingest of {streams or 'all streams'} with py-spy")
            run.table(_profile_ingest(run, tmp, py_spy, streams))
    elif ird < 3.0:
        say("  (py-spy not found: set PY_SPY=/path/to/py-spy for a per-function profile)")
    run.results["ingest"] = out


# -- 4. lossless codecs ---------------------------------------------------------------------


def _sample_blocks(run: Run, stream: str, blocks: int) -> np.ndarray:
    starts = np.linspace(0, run.num_frames - CLIP_FRAMES, blocks).round().astype(int)
    return np.concatenate([run.ds[stream].isel(time=slice(int(s), int(s) + CLIP_FRAMES)).values for s in starts])


def _shipped_writes_empty_chunks() -> bool:
    """Whether the store's arrays skip zarr's fill-value comparison on write (as ingest writes them)."""
    import zarr

    from deepepil.recordings.store import create_stream_array

    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    array = create_stream_array(group, "ir", 1, (2, 2), "uint16")
    return bool(array.async_array.config.write_empty_chunks)


SHIPPED_WRITES_EMPTY_CHUNKS = _shipped_writes_empty_chunks()


class _MemoryArray:
    """An in-memory sharded zarr array with given codecs, for timing encode and decode of ``frames``."""

    def __init__(self, frames: np.ndarray, per_shard: int, cache: bool | None = None, **codecs: Any) -> None:
        import zarr

        self.frames = frames
        self.cache = cache
        self.backing: dict[str, Any] = {}
        self.array = zarr.create_array(
            zarr.storage.MemoryStore(self.backing), shape=frames.shape, dtype=frames.dtype,
            chunks=(1, *frames.shape[1:]), shards=(per_shard, *frames.shape[1:]), fill_value=0,
            config={"write_empty_chunks": SHIPPED_WRITES_EMPTY_CHUNKS}, **codecs)
        self.encode_s = float("inf")
        self.decode_s = float("inf")
        self.back: np.ndarray | None = None

    def time_once(self) -> None:
        """One timed write and one timed read; keeps the best times seen (a write over 2 s runs once)."""
        with pillow_block_cache(self.cache):
            if self.encode_s == float("inf") or self.encode_s < 2.0:
                t0 = time.perf_counter()
                self.array[:] = self.frames
                self.encode_s = min(self.encode_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            self.back = self.array[:]
            self.decode_s = min(self.decode_s, time.perf_counter() - t0)

    @property
    def stored_bytes(self) -> float:
        return float(sum(len(v.to_bytes()) for k, v in self.backing.items() if not k.endswith("zarr.json")))


def _time_interleaved(arrays: list[_MemoryArray], repeats: int) -> None:
    """Best of ``repeats`` for every array, taking turns, so a disturbance hits all alike."""
    for _ in range(repeats):
        for a in arrays:
            a.time_once()


def bench_codecs(run: Run) -> None:
    from zarr.codecs import BloscCodec

    from deepepil.recordings.codecs import Pred2DCodec
    from deepepil.recordings.store import DEFAULT_LAYOUT, StoreLayout

    def blosc(cname: str, level: int) -> Any:
        return BloscCodec(cname=cname, clevel=level, shuffle="bitshuffle")

    def mark(codec: str, level: int) -> str:
        layout = StoreLayout(depth_codec=codec, zstd_level=level)  # type: ignore[arg-type]
        same = (layout.depth_codec, layout.zstd_level) == (DEFAULT_LAYOUT.depth_codec, DEFAULT_LAYOUT.zstd_level)
        return f" = `StoreLayout(depth_codec=\"{codec}\", zstd_level={level})`" + (" **(default)**" if same else "")

    raw, pred = {"filters": None}, {"filters": [Pred2DCodec()]}
    configs: list[tuple[str, dict[str, Any]]] = [
        ("blosc-zstd 3, bitshuffle (raw)" + mark("zstd", 3), {**raw, "compressors": blosc("zstd", 3)}),
        ("blosc-zstd 5, bitshuffle (raw)" + mark("zstd", 5), {**raw, "compressors": blosc("zstd", 5)}),
        ("blosc-zstd 9, bitshuffle (raw)" + mark("zstd", 9), {**raw, "compressors": blosc("zstd", 9)}),
        ("blosc-lz4 5, bitshuffle (raw)", {**raw, "compressors": blosc("lz4", 5)}),
        ("pred2d + blosc-zstd 3" + mark("pred2d-zstd", 3), {**pred, "compressors": blosc("zstd", 3)}),
        ("pred2d + blosc-zstd 5" + mark("pred2d-zstd", 5), {**pred, "compressors": blosc("zstd", 5)}),
        ("pred2d + blosc-zstd 9" + mark("pred2d-zstd", 9), {**pred, "compressors": blosc("zstd", 9)}),
        ("pred2d + blosc-lz4 5", {**pred, "compressors": blosc("lz4", 5)}),
    ]
    for label, codecs in configs:  # the labels must say what StoreLayout writes
        if "StoreLayout(" in label:
            codec = "pred2d-zstd" if label.startswith("pred2d") else "zstd"
            level = int(label.split("zstd ")[1].split(",")[0].split(" ")[0])
            expected = StoreLayout(depth_codec=codec, zstd_level=level).codecs_for("depth")  # type: ignore[arg-type]
            if [type(f) for f in expected.get("filters") or []] != [type(f) for f in codecs["filters"] or []]:
                raise AssertionError(f"{label}: filters differ from StoreLayout's")
    blocks = 2 if run.args.quick else 4
    table = Table(
        f"Lossless ir/depth codecs on {blocks} x {CLIP_FRAMES} frames spread over the recording "
        "(1 frame/chunk, 32/shard; zarr pipeline in memory, 2 cores)",
        ["codec", "depth ratio", "ir ratio", "depth encode MB/s", "depth decode MB/s", "ir encode MB/s",
         "ir decode MB/s", "decode ms/frame (depth)"],
    )
    out: dict[str, Any] = {}
    samples = {s: _sample_blocks(run, s, blocks) for s in ("depth", "ir")}
    say(f"  codecs: {len(configs)} configurations x 2 streams, best of 3, taking turns")
    arrays = {(label, stream): _MemoryArray(frames, 32, **codecs)
              for label, codecs in configs for stream, frames in samples.items()}
    _time_interleaved(list(arrays.values()), 3)
    for label, _ in configs:
        row: dict[str, Any] = {}
        for stream, frames in samples.items():
            a = arrays[(label, stream)]
            if not np.array_equal(a.back, frames):
                raise AssertionError(f"{label}: {stream} does not round-trip bit-exactly")
            raw = frames.nbytes
            row[stream] = {"ratio": raw / a.stored_bytes, "encode_MBps": raw / 1e6 / a.encode_s,
                           "decode_MBps": raw / 1e6 / a.decode_s,
                           "decode_ms_per_frame": a.decode_s / len(frames) * 1e3,
                           "stored_bytes": a.stored_bytes, "encode_s": a.encode_s, "decode_s": a.decode_s}
        table.add(label, f"{row['depth']['ratio']:.2f}:1", f"{row['ir']['ratio']:.2f}:1",
                  row["depth"]["encode_MBps"], row["depth"]["decode_MBps"], row["ir"]["encode_MBps"],
                  row["ir"]["decode_MBps"], row["depth"]["decode_ms_per_frame"])
        out[label] = row
    # the whole recording, as stored on disk by the default layout
    whole = {}
    for stream in ("depth", "ir"):
        raw = run.num_frames * int(np.prod(run.ds[stream].shape[1:])) * 2
        whole[stream] = raw / dir_bytes(run.data.store / stream)
    out["whole_recording_default"] = whole
    table.notes.append(
        f"Whole recording on disk with the default layout: depth {whole['depth']:.2f}:1, ir {whole['ir']:.2f}:1 "
        "(raw bytes / bytes of the stream's shard files). Every configuration was checked to round-trip "
        "bit-exactly. MB/s are raw (uncompressed) megabytes, best of 3 (configurations take turns; an encode "
        f"over 2 s runs once); arrays written with `write_empty_chunks={SHIPPED_WRITES_EMPTY_CHUNKS}` like the store's."
    )
    run.results["codecs"] = out
    run.table(table)


# -- 5. chunking --------------------------------------------------------------------------------


def _codec_label(layout: Any) -> str:
    pred = "pred2d + " if layout.depth_codec == "pred2d-zstd" else ""
    return f"{pred}blosc-zstd {layout.zstd_level}" + (" on raw frames" if not pred else "")


def _layout_label(name: str) -> str:
    from deepepil.recordings.store import DEFAULT_LAYOUT

    layout = _data.variant_layout(name)
    label = f"{layout.frames_per_chunk}, {layout.frames_per_shard}"
    if (layout.depth_codec, layout.zstd_level) != (DEFAULT_LAYOUT.depth_codec, DEFAULT_LAYOUT.zstd_level):
        label += f", {_codec_label(layout)}"
    if layout == DEFAULT_LAYOUT:
        label += " (default)"
    if layout.frames_per_chunk == layout.frames_per_shard:
        label += f" (= unsharded {layout.frames_per_chunk}-frame chunks)"
    return label


def bench_chunking(run: Run) -> None:
    import deepepil
    from deepepil.recordings.store import DEFAULT_LAYOUT

    table = Table(
        f"Chunking and sharding of ir/depth ({_codec_label(DEFAULT_LAYOUT)} unless stated): same random "
        "indices and clip starts as above",
        ["frames/chunk, frames/shard", "ir random p50 / p95 ms", "depth random p50 / p95 ms",
         f"ir {CLIP_FRAMES}-frame clip frames/s", f"depth {CLIP_FRAMES}-frame clip frames/s", "ir+depth MB", "files"],
    )
    names = _data.variant_names()
    out: dict[str, Any] = {name: {} for name in names}
    datasets = {name: deepepil.open_recording(run.data.variant(name)) for name in names}
    for stream in ("ir", "depth"):
        say(f"  chunking {stream}: {len(datasets)} layouts, taking turns per index")
        _data.warm(*(run.data.variant(name) / stream for name in datasets))
        random_s = {name: [] for name in datasets}
        clip_s = {name: [] for name in datasets}
        for name, ds in datasets.items():  # untimed warm-up read each
            ds[stream].isel(time=int(run.indices[0])).values
        for i in run.indices:
            for name, ds in datasets.items():
                t0 = time.perf_counter()
                ds[stream].isel(time=int(i)).values
                random_s[name].append(time.perf_counter() - t0)
        for start in run.clip_starts:
            for name, ds in datasets.items():
                t0 = time.perf_counter()
                ds[stream].isel(time=slice(int(start), int(start) + CLIP_FRAMES)).values
                clip_s[name].append(time.perf_counter() - t0)
        for name in datasets:
            p50, p95 = p50_p95_ms(np.asarray(random_s[name]))
            out[name][stream] = {"p50_ms": p50, "p95_ms": p95,
                                 "clip_fps": CLIP_FRAMES / float(np.median(clip_s[name]))}
    for name in datasets:
        path, row = run.data.variant(name), out[name]
        size = sum(dir_bytes(path / s) for s in ("ir", "depth"))
        files = sum(1 for s in ("ir", "depth") for f in (path / s).rglob("*") if f.is_file())
        table.add(_layout_label(name), f"{row['ir']['p50_ms']:.2f} / {row['ir']['p95_ms']:.2f}",
                  f"{row['depth']['p50_ms']:.2f} / {row['depth']['p95_ms']:.2f}",
                  row["ir"]["clip_fps"], row["depth"]["clip_fps"], size / 1e6, files)
        row.update(bytes=size, files=files)
    table.notes.append(
        "Through `open_recording` + `isel`, files warm; the layouts take turns on every index and clip, so "
        "a disturbance hits all alike. \"Unsharded 30-frame chunks\" is emulated as 30-frame "
        "shards holding one 30-frame inner chunk, which reads and decodes like a plain 30-frame chunk."
    )
    run.results["chunking"] = out
    run.table(table)


# -- 6. rgb codec ---------------------------------------------------------------------------------


def bench_rgb(run: Run) -> None:
    from deepepil.recordings.store import StoreLayout

    originals = np.load(run.data.rgb_original)
    n = len(originals)
    per_shard = 8 if n % 8 == 0 else n
    table = Table(
        f"rgb codec on {n} rendered {originals.shape[2]}x{originals.shape[1]} frames (before any JPEG)",
        ["codec", "KB/frame", "ratio vs raw", "encode ms/frame", "decode ms/frame", "PSNR dB (mean / min)"],
    )
    out: dict[str, Any] = {}
    configs = [(f"JPEG q{q}" + (" (default)" if q == 90 else ""), StoreLayout(rgb_quality=q)) for q in (75, 90, 95)]
    configs.append(("lossless blosc-zstd 5, byte shuffle", StoreLayout(rgb_codec="zstd")))
    configs.append((PILLOW_CACHE_LABEL.format(q=90), StoreLayout()))
    say(f"  rgb: {len(configs)} configurations, best of 5, taking turns")
    arrays = [_MemoryArray(originals, per_shard,
                           cache=(not SHIPPED_PILLOW_CACHE) if label == PILLOW_CACHE_LABEL.format(q=90) else None,
                           **layout.codecs_for("rgb")) for label, layout in configs]
    _time_interleaved(arrays, 5)
    for (label, _), a in zip(configs, arrays):
        scores = [psnr(x, y) for x, y in zip(a.back, originals)]
        mean_psnr = float(np.mean(scores))
        table.add(label, a.stored_bytes / n / 1e3, f"{originals.nbytes / a.stored_bytes:.1f}:1",
                  a.encode_s / n * 1e3, a.decode_s / n * 1e3,
                  "lossless" if np.isinf(mean_psnr) else f"{mean_psnr:.1f} / {min(scores):.1f}")
        out[label] = {"stored_bytes": a.stored_bytes, "encode_s": a.encode_s, "decode_s": a.decode_s,
                      "bytes_per_frame": a.stored_bytes / n, "psnr_mean_db": mean_psnr,
                      "psnr_min_db": float(min(scores))}
    mp4_bytes = run.data.mp4("rgb").stat().st_size / run.num_frames
    table.notes.append(
        f"For scale: the H.264 MP4 (crf 18, GOP 250) of the store's rgb takes {mp4_bytes / 1e3:.0f} KB/frame. "
        "Speeds through the zarr pipeline (Pillow / libjpeg-turbo), 2 cores, best of 5 (configurations take "
        "turns). In a real ingest from an "
        "Azure Kinect MKV the colour is MJPEG already, so the store's JPEG is a second generation. "
        f"Pillow's block cache is {'on' if SHIPPED_PILLOW_CACHE else 'off'} as deepepil ships; the what-if row "
        f"turns it {WHAT_IF_PILLOW} (it matters for single random frames, see the random-frame what-if table)."
    )
    run.results["rgb"] = out
    run.table(table)


# -- 7. memory --------------------------------------------------------------------------------------

_RSS_CHILD = """
import re, resource, sys, json
import numpy as np
import deepepil, xarray, zarr
import deepepil.recordings.store
mode, path, idx = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {"baseline_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
if mode != "baseline":
    ds = deepepil.open_recording(path)
    out["open_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if mode == "read":
        for stream in ds.data_vars:
            for i in idx:
                ds[stream].isel(time=i).values
out["peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["vmhwm_kb"] = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps(out))
"""


def bench_memory(run: Run) -> None:
    idx = [int(i) for i in run.indices[:100]]
    res = {}
    for mode in ("baseline", "open", "read"):
        say(f"  memory: {mode} (fresh process)")
        # Through sh: a child forked straight from this (large) process starts with this
        # process's RSS as its ru_maxrss (Linux keeps the pre-exec high-water mark).
        done = subprocess.run(["sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", _RSS_CHILD, mode,
                               str(run.data.store), json.dumps(idx)], check=True, capture_output=True, text=True)
        res[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    mb = {k: v["peak_kb"] / 1024 for k, v in res.items()}
    hwm = {k: v["vmhwm_kb"] / 1024 for k, v in res.items()}
    shapes = {s: run.ds[s].shape for s in STREAMS}
    raw = {s: int(np.prod(shape)) * run.ds[s].dtype.itemsize for s, shape in shapes.items()}
    table = Table(
        f"Peak RSS (`ru_maxrss`, fresh process) for the {run.num_frames}-frame recording",
        ["what", "peak RSS MiB (ru_maxrss)", "VmHWM MiB"],
    )
    table.add("import deepepil, xarray, zarr (baseline)", mb["baseline"], hwm["baseline"])
    table.add("+ open_recording", mb["open"], hwm["open"])
    table.add(f"+ open_recording and {len(idx)} random frames of each stream", mb["read"], hwm["read"])
    table.add(f"np.load of the depth stream as one array (computed: {shapes['depth'][0]} x "
              f"{shapes['depth'][1]} x {shapes['depth'][2]} x 2 B)", raw["depth"] / 2**20, "")
    table.add("np.load of all three streams (computed)", sum(raw.values()) / 2**20, "")
    table.notes.append(
        "The child is started through `sh`: a process forked directly from the bench inherits the bench's "
        "RSS as its `ru_maxrss` (Linux keeps the high-water mark across exec), which would overstate it. "
        "VmHWM from /proc/self/status is the same measure from the kernel's per-process counter."
    )
    run.targets.append(Target("peak RSS, open + 100 random frames/stream", f"{mb['read']:.0f} MB", "< 300 MB",
                              mb["read"] < 300))
    run.results["memory"] = {"peak_mib": mb, "vmhwm_mib": hwm, "raw_bytes": raw}
    run.table(table)


# -- main ----------------------------------------------------------------------------------------------


def _markdown(run: Run, info: dict[str, str], command: str, seconds: float) -> str:
    p = run.data.params
    lines = [
        f"### bench_store ({'quick' if run.args.quick else 'full'})",
        "",
        f"Command: `{command}`  ",
        f"Date: {info['date']}; {seconds / 60:.1f} min"
        + (f", of which {run.results['waited_for_idle_s'] / 60:.1f} min waiting for other work to stop"
           if run.results.get("waited_for_idle_s") else "") + "  ",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM, {info['os']}, no GPU  ",
        f"Python {info['python']}; {info['versions']}  ",
        "CPU used by other processes on the machine while each section ran (share of all cores): "
        + ", ".join(f"{k} {100 * v:.0f} %" for k, v in run.results.get("others_cpu_share", {}).items())
        + "  ",
        f"Data: synthetic recording size={p.size!r}, {p.seconds:g} s, {run.num_frames} frames at "
        f"{run.fps:g} fps, seed {p.seed}; rgb {run.ds['rgb'].shape[2]}x{run.ds['rgb'].shape[1]}, ir/depth "
        f"{run.ds['depth'].shape[2]}x{run.ds['depth'].shape[1]}",
        "",
    ]
    if run.targets:
        t = Table("Targets", ["target", "measured", "wanted", ""])
        for target in run.targets:
            t.add(*target.row())
        lines.append(t.markdown())
    lines += [table.markdown() for table in run.tables]
    return "\n".join(lines)


def _cpu_sample() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return fields[3] + fields[4], sum(fields)


def _idle_fraction(seconds: float = 3.0) -> float:
    """Share of CPU time the whole machine spent idle over the next ``seconds``."""
    idle0, total0 = _cpu_sample()
    time.sleep(seconds)
    idle1, total1 = _cpu_sample()
    return (idle1 - idle0) / max(total1 - total0, 1)


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (py-spy, RSS probes)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class OthersMeter:
    """CPU that other processes used while a section ran: machine busy time minus ours."""

    def __enter__(self) -> "OthersMeter":
        self.idle0, self.total0 = _cpu_sample()
        self.own0 = _own_cpu_seconds()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        idle1, total1 = _cpu_sample()
        tick = os.sysconf("SC_CLK_TCK")
        busy = ((total1 - self.total0) - (idle1 - self.idle0)) / tick
        self.wall_s = time.perf_counter() - self.t0
        self.others_core_s = max(busy - (_own_cpu_seconds() - self.own0), 0.0)
        self.others_share = self.others_core_s / max(self.wall_s * len(os.sched_getaffinity(0)), 1e-9)


def _wait_until_idle(limit_s: float) -> float:
    """Wait (at most ``limit_s``) until other work leaves the machine at least 90 % idle; seconds waited."""
    start = time.monotonic()
    deadline = start + limit_s
    while True:
        idle = _idle_fraction()
        if idle >= 0.9:
            return time.monotonic() - start
        if time.monotonic() > deadline:
            say(f"  machine still busy ({100 * (1 - idle):.0f} % CPU used by others); going on")
            return time.monotonic() - start
        say(f"  waiting for the machine to be idle ({100 * (1 - idle):.0f} % CPU in use)")
        time.sleep(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small 20 s recording (about 1-2 minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--n-random", type=int, default=None, help="random frames (default 200; quick 100)")
    parser.add_argument("--n-clips", type=int, default=None, help="clips per stream (default 20; quick 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random indices and of the data")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached data")
    parser.add_argument("--profile-ingest", action="store_true",
                        help="profile the ingest with py-spy even when it meets its target")
    parser.add_argument("--prototypes", action="store_true",
                        help="also time the ingest prototypes in bench/_ingest_prototype.py (a few minutes)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each section, wait up to this long for other work on the machine to stop")
    parser.add_argument("--out", type=Path, default=None, help="markdown output (JSON beside it)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    args.n_random = args.n_random or (100 if args.quick else 200)
    args.n_clips = args.n_clips or (10 if args.quick else 20)
    params = (_data.DataParams(size="small", seconds=20.0, seed=args.seed) if args.quick
              else _data.DataParams(size="full", seconds=120.0, seed=args.seed))
    started = time.perf_counter()
    say(f"bench_store: {params.size} {params.seconds:g} s recording; data in {_data.CACHE}")
    data = _data.prepare(params, variants="chunking" in sections, rebuild=args.rebuild)
    say(f"data ready after {time.perf_counter() - started:.0f} s")
    bench_started = time.perf_counter()
    run = Run(args, data)
    functions = {"random": bench_random, "clips": bench_clips, "ingest": bench_ingest, "codecs": bench_codecs,
                 "chunking": bench_chunking, "rgb": bench_rgb, "memory": bench_memory}
    others: dict[str, float] = {}
    waited = 0.0
    for name in SECTIONS:
        if name in sections:
            if args.wait_idle:
                waited += _wait_until_idle(args.wait_idle)
            say(f"[{name}]")
            with OthersMeter() as meter:
                functions[name](run)
            others[name] = meter.others_share
            say(f"[{name}] {meter.wall_s:.0f} s; other processes used {100 * meter.others_share:.0f} % of the "
                "machine meanwhile" + ("  WARNING: timings are disturbed" if meter.others_share > 0.1 else ""))
    run.results["others_cpu_share"] = others
    run.results["waited_for_idle_s"] = waited
    seconds = time.perf_counter() - bench_started
    command = "python bench/bench_store.py " + " ".join(argv if argv is not None else sys.argv[1:])
    info = machine()
    text = _markdown(run, info, command.strip(), seconds)
    out = args.out or _data.CACHE / "results" / f"bench_store-{'quick' if args.quick else 'full'}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {"machine": info, "command": command, "seconds": seconds, "results": run.results,
         "targets": [t.__dict__ for t in run.targets]}, indent=1, default=float))
    print()
    if run.targets:
        print(Table("Targets", ["target", "measured", "wanted", ""], [t.row() for t in run.targets]).markdown())
    say(f"bench ran {seconds:.0f} s (data {bench_started - started:.0f} s); markdown: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
