"""What-if prototypes for a faster ingest, measured beside the real one (nothing here is in deepepil).

``write_empty_chunks``
    The real :func:`deepepil.ingest`, run under ``zarr.config.set({"array.write_empty_chunks": True})``.
    With zarr's default (False) every chunk *and* every whole shard is compared with the
    fill value (``np.array_equal``) on zarr's single event-loop thread before it is
    encoded; recordings never have empty frames worth skipping. (Since commit 20f551c the
    shipped ``create_stream_array`` sets it, and the bench leaves this prototype out.)
``pillow_block_cache``
    The real :func:`deepepil.ingest` with Pillow's block cache on
    (``PIL.Image.core.set_blocks_max(16)``, like ``PILLOW_BLOCKS_MAX=16``): Pillow otherwise
    gets fresh memory from the OS for every decoded and every encoded 1080p image.
``pipelined``
    The same reading and the same store layout, but the zarr write of shard *k* runs in a
    writer thread while the main thread demuxes and decodes shard *k + 1* (one shard in
    flight), plus ``write_empty_chunks=True`` and the Pillow block cache. Frame checks are
    left out (they cost ~1 %), the manifest is written as in ingest.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def pillow_block_cache(blocks: int = 16) -> Iterator[None]:
    """Let Pillow keep up to ``blocks`` freed image blocks for reuse, within the block."""
    from PIL import Image

    before = Image.core.get_blocks_max()
    Image.core.set_blocks_max(blocks)
    try:
        yield
    finally:
        Image.core.set_blocks_max(before)


def ingest_pillow_block_cache(mkv: Path, out_dir: Path, streams: list[str] | None) -> float:
    """Wall seconds of ``deepepil.ingest`` with Pillow's block cache on."""
    import deepepil

    shutil.rmtree(out_dir, ignore_errors=True)
    t0 = time.perf_counter()
    with pillow_block_cache():
        deepepil.ingest(mkv, out_dir, name="proto", streams=streams, progress=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(out_dir, ignore_errors=True)
    return wall


def ingest_write_empty_chunks(mkv: Path, out_dir: Path, streams: list[str] | None) -> float:
    """Wall seconds of ``deepepil.ingest`` with zarr's ``write_empty_chunks=True``."""
    import zarr

    import deepepil

    shutil.rmtree(out_dir, ignore_errors=True)
    t0 = time.perf_counter()
    with zarr.config.set({"array.write_empty_chunks": True}):
        deepepil.ingest(mkv, out_dir, name="proto", streams=streams, progress=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(out_dir, ignore_errors=True)
    return wall


def ingest_pipelined(mkv: Path, out_dir: Path, streams: list[str] | None) -> float:
    """Wall seconds of a read/write-overlapped ingest (see the module docstring)."""
    import zarr

    from deepepil.recordings.readers.azure_kinect import AzureKinectSource
    from deepepil.recordings.store import DEFAULT_LAYOUT, create_stream_array, create_time_array, write_manifest

    shutil.rmtree(out_dir, ignore_errors=True)
    t0 = time.perf_counter()
    src = AzureKinectSource(str(mkv))
    names = [s for s in ("rgb", "ir", "depth") if s in src.streams and (streams is None or s in streams)]
    n = src.streams[names[0]].num_frames
    per_shard = DEFAULT_LAYOUT.frames_per_shard
    with zarr.config.set({"array.write_empty_chunks": True}), pillow_block_cache():
        group = zarr.open_group(zarr.storage.LocalStore(out_dir / "proto.zarr"), mode="w-", zarr_format=3)
        arrays = {s: create_stream_array(group, s, n, tuple(src.streams[s].frame_shape), src.streams[s].dtype)
                  for s in names}
        writer = ThreadPoolExecutor(1, thread_name_prefix="shard-writer")
        pending: Future[Any] | None = None

        def write(batch: dict[str, np.ndarray], start: int) -> None:
            for s, block in batch.items():
                arrays[s][start : start + len(block)] = block

        frames: dict[str, list[np.ndarray]] = {s: [] for s in names}
        times: list[float] = []
        start = 0
        for index, row in enumerate(zip(*(src.iter_frames(s) for s in names))):
            for s, frame in zip(names, row):
                frames[s].append(frame.data)
            times.append(row[0].pts_seconds)
            if len(frames[names[0]]) == per_shard or index == n - 1:
                batch = {s: np.stack(v) for s, v in frames.items()}
                frames = {s: [] for s in names}
                if pending is not None:
                    pending.result()
                pending = writer.submit(write, batch, start)
                start = index + 1
        if pending is not None:
            pending.result()
        writer.shutdown()
        t = np.asarray(times)
        create_time_array(group, len(t))[:] = t - t[0]
    src.close()
    write_manifest(out_dir / "proto.zarr")
    wall = time.perf_counter() - t0
    shutil.rmtree(out_dir, ignore_errors=True)
    return wall
