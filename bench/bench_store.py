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


# -- 1. random frames ---------------------------------------------------------------------


def bench_random(run: Run) -> None:
    import deepepil

    idx = run.indices
    t0 = time.perf_counter()
    ds = deepepil.open_recording(run.data.store)
    open_ms = (time.perf_counter() - t0) * 1e3
    display = run.data.meta.get("display", {})
    table = Table(
        f"Random single frame, {len(idx)} random indices (seed {run.args.seed}), same indices for every method",
        ["stream", "frame", "store xarray p50 / p95 ms", "store zarr p50 / p95 ms", "MP4 seek p50 / p95 ms",
         "MP4 / store (p50)", "MP4 / store (p95)"],
    )
    out: dict[str, Any] = {"open_recording_ms": open_ms}
    for stream in STREAMS:
        var = ds[stream]
        shape = "x".join(str(s) for s in var.shape[1:3][::-1])
        say(f"  random {stream}: store via xarray")
        t_xr = time_calls(lambda i: ds[stream].isel(time=i).values, idx)
        say(f"  random {stream}: store via zarr")
        arr = _zarr_array(run.data.store, stream)
        t_zarr = time_calls(lambda i: arr[i], idx)
        say(f"  random {stream}: MP4 seek ({len(idx)} seeks)")
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
                ref = _data.to_gray8(ref, *_data.gray8_mapping(stream, display))
            checks.append(psnr(mp4.frame(int(i)), ref))
        mp4.close()
        xr50, xr95 = p50_p95_ms(t_xr)
        z50, z95 = p50_p95_ms(t_zarr)
        m50, m95 = p50_p95_ms(t_mp4)
        table.add(stream, shape, f"{xr50:.2f} / {xr95:.2f}", f"{z50:.2f} / {z95:.2f}", f"{m50:.0f} / {m95:.0f}",
                  f"{m50 / xr50:.0f}x", f"{m95 / xr95:.0f}x")
        out[stream] = {
            "xarray_ms": {"p50": xr50, "p95": xr95, "mean": float(t_xr.mean() * 1e3)},
            "zarr_ms": {"p50": z50, "p95": z95, "mean": float(t_zarr.mean() * 1e3)},
            "mp4_seek_ms": {"p50": m50, "p95": m95, "mean": float(t_mp4.mean() * 1e3)},
            "speedup_p50": m50 / xr50, "speedup_p95": m95 / xr95,
            "mp4_keyframes": len(keys), "mp4_psnr_vs_store_db": float(np.mean(checks)),
            "mp4_bytes": run.data.mp4(stream).stat().st_size,
        }
        if stream in ("ir", "depth"):
            run.targets.append(Target(f"random {stream} frame p95 (xarray)", f"{xr95:.2f} ms", "<= 5 ms", xr95 <= 5.0))
            run.targets.append(Target(f"random {stream} frame vs MP4 seek (p50 ratio)", f"{m50 / xr50:.0f}x",
                                      ">= 50x", m50 / xr50 >= 50))
    gops = {s: out[s]["mp4_keyframes"] for s in STREAMS}
    table.notes += [
        f"Store: `deepepil.open_recording(path)` once ({open_ms:.0f} ms), then `ds[stream].isel(time=i).values`; "
        "zarr: `zarr.open_group(...)[stream][i]`. One untimed warm-up read each. Files are in the OS page cache "
        "(written shortly before; caches were not dropped), for the store and the MP4 alike.",
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
        t_xr = time_calls(lambda s: ds[stream].isel(time=slice(s, s + CLIP_FRAMES)).values, starts)
        arr = _zarr_array(run.data.store, stream)
        t_zarr = time_calls(lambda s: arr[s : s + CLIP_FRAMES], starts)
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


def _ingest_once(mkv: Path, out_dir: Path, streams: list[str] | None) -> dict[str, float]:
    import deepepil

    shutil.rmtree(out_dir, ignore_errors=True)
    c0, t0 = cpu_seconds(), time.perf_counter()
    path = deepepil.ingest(mkv, out_dir, name="bench", streams=streams, progress=False)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    duration = float(deepepil.open_recording(path).attrs["duration_seconds"])
    store_bytes = dir_bytes(path)
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"wall_s": wall, "cpu_s": cpu, "duration_s": duration, "realtime": duration / wall,
            "store_bytes": store_bytes}


def _ingest_stages(run: Run, out_dir: Path) -> dict[str, float]:
    """Wall seconds of each stage of an ir+depth ingest, measured on its own."""
    import zarr

    from deepepil.recordings.ingest import hash_source
    from deepepil.recordings.store import DEFAULT_LAYOUT, _sha256, _store_files, create_stream_array

    src = _data.open_mkv(run.data)
    t0 = time.perf_counter()
    n = 0
    sample: dict[str, list[np.ndarray]] = {"ir": [], "depth": []}
    for f_ir, f_depth in zip(src.iter_frames("ir"), src.iter_frames("depth")):
        if n < 8 * DEFAULT_LAYOUT.frames_per_shard:
            sample["ir"].append(f_ir.data)
            sample["depth"].append(f_depth.data)
        n += 1
    read_s = time.perf_counter() - t0
    src.close()
    t0 = time.perf_counter()
    hash_source(run.data.mkv)
    hash_s = time.perf_counter() - t0
    # encode + write of a sample, through the real layout, to disk and to memory
    stages = {"frames": float(n), "read_mkv_s": read_s, "hash_source_s": hash_s}
    for target in ("memory", "disk"):
        shutil.rmtree(out_dir, ignore_errors=True)
        store = zarr.storage.MemoryStore() if target == "memory" else zarr.storage.LocalStore(out_dir)
        group = zarr.open_group(store, mode="w", zarr_format=3)
        m = len(sample["ir"])
        arrays = {s: create_stream_array(group, s, m, sample[s][0].shape, "uint16") for s in sample}
        stacked = {s: np.stack(v) for s, v in sample.items()}
        t0 = time.perf_counter()
        for start in range(0, m, DEFAULT_LAYOUT.frames_per_shard):
            for s in arrays:
                arrays[s][start : start + DEFAULT_LAYOUT.frames_per_shard] = stacked[s][
                    start : start + DEFAULT_LAYOUT.frames_per_shard]
        stages[f"encode_write_{target}_s"] = (time.perf_counter() - t0) / m * n
    t0 = time.perf_counter()
    for f in _store_files(out_dir):
        _sha256(f)
    stages["manifest_hash_s"] = (time.perf_counter() - t0) / len(sample["ir"]) * n
    shutil.rmtree(out_dir, ignore_errors=True)
    return stages


def _py_spy() -> str | None:
    return os.environ.get("PY_SPY") or shutil.which("py-spy") or (
        "/tmp/pyspy/bin/py-spy" if Path("/tmp/pyspy/bin/py-spy").exists() else None)


def _profile_ingest(run: Run, out_dir: Path, py_spy: str) -> Table:
    """py-spy (all threads, 100 Hz) over an ir+depth ingest in a child process: self time by function."""
    shutil.rmtree(out_dir, ignore_errors=True)
    raw = out_dir.parent / "ingest-profile.txt"
    code = (
        "import deepepil, sys; deepepil.ingest(sys.argv[1], sys.argv[2], name='prof', "
        "streams=['ir', 'depth'], progress=False)"
    )
    subprocess.run(
        [py_spy, "record", "--format", "raw", "--rate", "100", "--output", str(raw), "--",
         sys.executable, "-c", code, str(run.data.mkv), str(out_dir)],
        check=True, capture_output=True,
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    self_time: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        k = int(count)
        total += k
        leaf = frames[-1]
        name, _, where = leaf.partition(" (")
        where = where.rstrip(")")
        module = where.split("site-packages/")[-1].split("/work/main/")[-1]
        self_time[f"{name} ({module.rsplit(':', 1)[0]})"] += k
    table = Table(
        "Where an ir+depth ingest spends its time (py-spy, all threads, self time by function)",
        ["function (file)", "share of samples"],
    )
    for name, k in self_time.most_common(14):
        table.add(f"`{name}`", f"{100 * k / total:.1f} %")
    table.notes.append(f"{total} samples at 100 Hz over all threads (idle threads excluded); raw stacks: {raw}")
    return table


def bench_ingest(run: Run) -> None:
    tmp = _data.CACHE / "tmp" / "ingest"
    table = Table(
        f"Ingest from the Azure Kinect MKV ({run.num_frames} frames, "
        f"{run.data.mkv.stat().st_size / 1e9:.2f} GB) with the default layout",
        ["streams", "wall s", "recording s", "x real time", "CPU s / wall s", "store MB"],
    )
    out: dict[str, Any] = {}
    w, h = run.ds["rgb"].shape[2], run.ds["rgb"].shape[1]
    for label, streams in (("ir + depth", ["ir", "depth"]), (f"all (rgb {w}x{h} JPEG q90)", None)):
        say(f"  ingest {label}")
        r = _ingest_once(run.data.mkv, tmp, streams)
        table.add(label, r["wall_s"], r["duration_s"], f"{r['realtime']:.1f}x", r["cpu_s"] / r["wall_s"],
                  r["store_bytes"] / 1e6)
        out[label] = r
    ird = out["ir + depth"]["realtime"]
    run.targets.append(Target("ingest ir+depth, x real time (2 cores)", f"{ird:.1f}x", ">= 3x", ird >= 3.0))
    table.notes.append(
        "`deepepil.ingest(mkv, store, streams=[...])`: demux + decode, frame checks, pred2d + blosc-zstd "
        "(rgb: JPEG decode + re-encode), sharded zarr writes, source sha256 in a thread, manifest, publish. "
        "CPU s / wall s near 2 means both cores are busy."
    )
    run.table(table)

    say("  ingest stages (ir + depth, each measured alone)")
    st = _ingest_stages(run, tmp)
    wall = out["ir + depth"]["wall_s"]
    dur = out["ir + depth"]["duration_s"]
    stages = Table(
        "Ingest ir+depth, stage by stage (each alone; encode/write and manifest extrapolated from 256 frames)",
        ["stage", "s", "share of ingest wall", "x real time if only this"],
    )
    for key, label in (("read_mkv_s", "demux MKV + b16g -> uint16 (ir and depth)"),
                       ("encode_write_memory_s", "pred2d + blosc-zstd encode, sharded (zarr, in memory)"),
                       ("encode_write_disk_s", "same, written to disk"),
                       ("manifest_hash_s", "sha256 of the written store (manifest)"),
                       ("hash_source_s", "sha256 of the source MKV (in a thread beside the ingest)")):
        stages.add(label, st[key], f"{100 * st[key] / wall:.0f} %", f"{dur / st[key]:.1f}x")
    out["stages"] = st
    run.table(stages)
    py_spy = _py_spy()
    if py_spy and (ird < 3.0 or run.args.profile_ingest):
        say("  profiling an ir+depth ingest with py-spy")
        run.table(_profile_ingest(run, tmp, py_spy))
    elif ird < 3.0:
        say("  (py-spy not found: set PY_SPY=/path/to/py-spy for a per-function profile)")
    run.results["ingest"] = out


# -- 4. lossless codecs ---------------------------------------------------------------------


def _sample_blocks(run: Run, stream: str, blocks: int) -> np.ndarray:
    starts = np.linspace(0, run.num_frames - CLIP_FRAMES, blocks).round().astype(int)
    return np.concatenate([run.ds[stream].isel(time=slice(int(s), int(s) + CLIP_FRAMES)).values for s in starts])


def _memory_roundtrip(frames: np.ndarray, per_shard: int, **codecs: Any) -> dict[str, float]:
    """Write ``frames`` into an in-memory sharded zarr array with ``codecs``; bytes and speeds."""
    import zarr

    backing: dict[str, Any] = {}
    store = zarr.storage.MemoryStore(backing)
    arr = zarr.create_array(store, shape=frames.shape, dtype=frames.dtype, chunks=(1, *frames.shape[1:]),
                            shards=(per_shard, *frames.shape[1:]), fill_value=0, **codecs)
    t0 = time.perf_counter()
    arr[:] = frames
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = arr[:]
    dec = time.perf_counter() - t0
    stored = sum(len(v.to_bytes()) for k, v in backing.items() if not k.endswith("zarr.json"))
    return {"stored_bytes": float(stored), "encode_s": enc, "decode_s": dec, "back": back}


def bench_codecs(run: Run) -> None:
    from zarr.codecs import BloscCodec

    from deepepil.recordings.codecs import Pred2DCodec
    from deepepil.recordings.store import StoreLayout

    def blosc(cname: str, level: int) -> Any:
        return BloscCodec(cname=cname, clevel=level, shuffle="bitshuffle")

    configs: list[tuple[str, dict[str, Any]]] = [
        ("blosc-zstd 3, bitshuffle (raw)", {"compressors": blosc("zstd", 3)}),
        ("blosc-zstd 5, bitshuffle (raw) = `StoreLayout(depth_codec=\"zstd\")`",
         StoreLayout(depth_codec="zstd").codecs_for("depth")),
        ("blosc-zstd 9, bitshuffle (raw)", {"compressors": blosc("zstd", 9)}),
        ("blosc-lz4 5, bitshuffle (raw)", {"compressors": blosc("lz4", 5)}),
        ("pred2d + blosc-zstd 3", {"filters": [Pred2DCodec()], "compressors": blosc("zstd", 3)}),
        ("pred2d + blosc-zstd 5 = default `StoreLayout()`", StoreLayout().codecs_for("depth")),
        ("pred2d + blosc-zstd 9", {"filters": [Pred2DCodec()], "compressors": blosc("zstd", 9)}),
        ("pred2d + blosc-lz4 5", {"filters": [Pred2DCodec()], "compressors": blosc("lz4", 5)}),
    ]
    blocks = 2 if run.args.quick else 4
    table = Table(
        f"Lossless ir/depth codecs on {blocks} x {CLIP_FRAMES} frames spread over the recording "
        "(1 frame/chunk, 32/shard; zarr pipeline in memory, 2 cores)",
        ["codec", "depth ratio", "ir ratio", "depth encode MB/s", "depth decode MB/s", "ir encode MB/s",
         "ir decode MB/s", "decode ms/frame (depth)"],
    )
    out: dict[str, Any] = {}
    samples = {s: _sample_blocks(run, s, blocks) for s in ("depth", "ir")}
    for label, codecs in configs:
        say(f"  codec {label}")
        row: dict[str, Any] = {}
        for stream, frames in samples.items():
            r = _memory_roundtrip(frames, 32, **codecs)
            if not np.array_equal(r.pop("back"), frames):
                raise AssertionError(f"{label}: {stream} does not round-trip bit-exactly")
            raw = frames.nbytes
            row[stream] = {"ratio": raw / r["stored_bytes"], "encode_MBps": raw / 1e6 / r["encode_s"],
                           "decode_MBps": raw / 1e6 / r["decode_s"],
                           "decode_ms_per_frame": r["decode_s"] / len(frames) * 1e3, **r}
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
        "bit-exactly. MB/s are raw (uncompressed) megabytes."
    )
    run.results["codecs"] = out
    run.table(table)


# -- 5. chunking --------------------------------------------------------------------------------


def bench_chunking(run: Run) -> None:
    import deepepil

    table = Table(
        "Chunking and sharding of ir/depth (pred2d + blosc-zstd 5): same random indices and clip starts as above",
        ["frames/chunk, frames/shard", "ir random p50 / p95 ms", "depth random p50 / p95 ms",
         f"ir {CLIP_FRAMES}-frame clip frames/s", f"depth {CLIP_FRAMES}-frame clip frames/s", "ir+depth MB", "files"],
    )
    out: dict[str, Any] = {}
    for name, (per_chunk, per_shard) in _data.VARIANTS.items():
        path = run.data.variant(name)
        say(f"  chunking {name}")
        ds = deepepil.open_recording(path)
        row: dict[str, Any] = {}
        for stream in ("ir", "depth"):
            t = time_calls(lambda i: ds[stream].isel(time=i).values, run.indices)
            c = time_calls(lambda s: ds[stream].isel(time=slice(s, s + CLIP_FRAMES)).values, run.clip_starts)
            p50, p95 = p50_p95_ms(t)
            row[stream] = {"p50_ms": p50, "p95_ms": p95, "clip_fps": CLIP_FRAMES / float(np.median(c))}
        size = sum(dir_bytes(path / s) for s in ("ir", "depth"))
        files = sum(1 for s in ("ir", "depth") for f in (path / s).rglob("*") if f.is_file())
        label = f"{per_chunk}, {per_shard}" + (" (default)" if name == _data.DEFAULT_VARIANT else "") + (
            " (= unsharded 30-frame chunks)" if per_chunk == per_shard else "")
        table.add(label, f"{row['ir']['p50_ms']:.2f} / {row['ir']['p95_ms']:.2f}",
                  f"{row['depth']['p50_ms']:.2f} / {row['depth']['p95_ms']:.2f}",
                  row["ir"]["clip_fps"], row["depth"]["clip_fps"], size / 1e6, files)
        out[name] = {**row, "bytes": size, "files": files}
    table.notes.append(
        "Through `open_recording` + `isel`. \"Unsharded 30-frame chunks\" is emulated as 30-frame shards "
        "holding one 30-frame inner chunk, which reads and decodes like a plain 30-frame chunk."
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
    for label, layout in configs:
        say(f"  rgb {label}")
        r = _memory_roundtrip(originals, per_shard, **layout.codecs_for("rgb"))
        back = r.pop("back")
        scores = [psnr(a, b) for a, b in zip(back, originals)]
        mean_psnr = float(np.mean(scores))
        table.add(label, r["stored_bytes"] / n / 1e3, f"{originals.nbytes / r['stored_bytes']:.1f}:1",
                  r["encode_s"] / n * 1e3, r["decode_s"] / n * 1e3,
                  "lossless" if np.isinf(mean_psnr) else f"{mean_psnr:.1f} / {min(scores):.1f}")
        out[label] = {**r, "bytes_per_frame": r["stored_bytes"] / n, "psnr_mean_db": mean_psnr,
                      "psnr_min_db": float(min(scores))}
    mp4_bytes = run.data.mp4("rgb").stat().st_size / run.num_frames
    table.notes.append(
        f"For scale: the H.264 MP4 (crf 18, GOP 250) of the store's rgb takes {mp4_bytes / 1e3:.0f} KB/frame. "
        "Speeds through the zarr pipeline (Pillow / libjpeg-turbo), 2 cores. In a real ingest from an "
        "Azure Kinect MKV the colour is MJPEG already, so the store's JPEG is a second generation."
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
        f"Date: {info['date']}; {seconds / 60:.1f} min  ",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM, {info['os']}, no GPU  ",
        f"Python {info['python']}; {info['versions']}  ",
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
    for name in SECTIONS:
        if name in sections:
            t0 = time.perf_counter()
            say(f"[{name}]")
            functions[name](run)
            say(f"[{name}] {time.perf_counter() - t0:.0f} s")
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
