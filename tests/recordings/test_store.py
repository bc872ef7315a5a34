"""The recording store: ingest -> open_recording -> verify, on in-memory sources."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import psutil
import pytest
import xarray as xr

import deepepil
from deepepil.errors import IncompleteStoreError, RecordingNotFoundError
from deepepil.recordings.ingest import ingest
from deepepil.recordings.source import ArraySource
from deepepil.recordings.store import StoreLayout, list_recordings, open_recording, verify


def smooth_source(num_frames: int = 70, height: int = 48, width: int = 64, seed: int = 0, path: str = "rec") -> ArraySource:
    """Depth with noise and holes, IR, and a smooth RGB pattern (so JPEG error stays small)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    t = np.arange(num_frames)[:, None, None]
    depth = (1600 + 300 * np.sin(xx / 9.0 + t / 7.0) + rng.normal(0, 3, (num_frames, height, width))).astype(np.uint16)
    depth[rng.random(depth.shape) < 0.02] = 0
    ir = rng.integers(0, 3000, (num_frames, height, width), dtype=np.uint16)
    rgb_h, rgb_w = height + 6, width + 32
    ry, rx = np.mgrid[0:rgb_h, 0:rgb_w]
    rgb = np.empty((num_frames, rgb_h, rgb_w, 3), np.uint8)
    for i in range(num_frames):
        rgb[i, ..., 0] = (128 + 100 * np.sin(rx / 15.0 + i / 10.0)).astype(np.uint8)
        rgb[i, ..., 1] = (128 + 100 * np.cos(ry / 11.0)).astype(np.uint8)
        rgb[i, ..., 2] = 90
    calibration = {"device": "test", "depth": {"width": width, "height": height, "fx": 50.0, "fy": 50.0, "cx": 31.5, "cy": 23.5}}
    return ArraySource({"rgb": rgb, "ir": ir, "depth": depth}, fps=30.0, calibration=calibration,
                       attrs={"source_format": "arrays"}, path=path)


@pytest.fixture
def stored(tmp_path) -> tuple[ArraySource, Path]:
    src = smooth_source()
    return src, ingest(src, tmp_path / "store", progress=False)


def test_open_recording_gives_lazy_dataset_with_time_first(stored):
    src, path = stored
    ds = open_recording(path)
    assert isinstance(ds, xr.Dataset)
    assert list(ds.data_vars) == ["rgb", "ir", "depth"]
    for name in ds.data_vars:
        assert ds[name].dims[0] == "time"
    assert ds.depth.dims == ("time", "y", "x") and ds.rgb.dims == ("time", "rgb_y", "rgb_x", "channel")
    np.testing.assert_allclose(ds.time.values, np.arange(70) / 30.0)
    assert ds.time.attrs["units"] == "s"
    assert ds.attrs["fps"] == 30.0 and ds.attrs["num_frames"] == 70
    assert ds.attrs["calibration"]["depth"]["fx"] == 50.0
    assert ds.attrs["provenance"]["source_format"] == "arrays"
    # lazy: nothing loaded into memory on open
    assert not ds.depth.variable._in_memory


def test_depth_and_ir_are_bit_exact_and_rgb_close(stored):
    src, path = stored
    ds = open_recording(path)
    np.testing.assert_array_equal(ds.depth.values, src._arrays["depth"])
    np.testing.assert_array_equal(ds.ir.values, src._arrays["ir"])
    err = np.abs(ds.rgb.values.astype(int) - src._arrays["rgb"].astype(int)).mean()
    assert err < 3.0, f"JPEG q90 mean abs error {err:.2f} on smooth content"


def test_indexing_one_frame_reads_only_its_chunk(stored, tmp_path):
    _, path = stored
    # larger frames so a frame's chunk is clearly smaller than its shard
    big = smooth_source(num_frames=64, height=120, width=160, path="big")
    big_path = ingest(big, tmp_path / "store", progress=False)
    shard_bytes = max(f.stat().st_size for f in (big_path / "depth").rglob("*") if f.is_file() and f.name != "zarr.json")
    open_recording(path).depth.isel(time=3).values  # warm up: first use imports modules (file reads)
    proc = psutil.Process()
    before = proc.io_counters().read_chars
    ds = open_recording(big_path)
    after_open = proc.io_counters().read_chars
    frame = ds.depth.isel(time=37).values
    after_read = proc.io_counters().read_chars
    np.testing.assert_array_equal(frame, big._arrays["depth"][37])
    assert after_open - before < 64_000, "opening must read metadata only"
    assert after_read - after_open < shard_bytes / 4, (
        f"one frame read {after_read - after_open} bytes; its shard is {shard_bytes}"
    )


def test_verify_accepts_a_fresh_store_and_finds_damage(stored):
    _, path = stored
    assert verify(path).ok
    assert verify(path, decode=True).ok
    shard = next(p for p in sorted((path / "depth").rglob("*")) if p.is_file() and p.name != "zarr.json")
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = verify(path)
    assert not report.ok
    assert any("checksum differs" in p and shard.name in p for p in report.problems), report.problems
    (path / "stray.bin").write_bytes(b"x")
    shard.unlink()
    problems = verify(path).problems
    assert any(p.startswith("missing file") for p in problems)
    assert any(p.startswith("unexpected file") and "stray.bin" in p for p in problems)


def test_verify_decode_catches_damage_the_manifest_was_written_over(stored):
    _, path = stored
    shard = next(p for p in sorted((path / "rgb").rglob("*")) if p.is_file() and p.name != "zarr.json")
    shard.write_bytes(b"\0" * shard.stat().st_size)
    from deepepil.recordings.store import write_manifest

    write_manifest(path)  # a manifest that matches the damage
    assert verify(path).ok
    report = verify(path, decode=True)
    assert not report.ok and any("fail to decode" in p for p in report.problems)


def test_open_recording_refuses_unpublished_and_missing_stores(tmp_path, stored):
    _, path = stored
    with pytest.raises(RecordingNotFoundError):
        open_recording(tmp_path / "nope.zarr")
    partial = path.with_name("." + path.name + ".partial")
    path.rename(partial)
    with pytest.raises(IncompleteStoreError, match="never published"):
        open_recording(partial)
    with pytest.raises(IncompleteStoreError, match="Rerun"):
        open_recording(path)
    partial.rename(path)
    manifest = path / "_manifest" / "zarr.json"
    manifest.unlink()
    with pytest.raises(IncompleteStoreError, match="manifest"):
        open_recording(path)
    with pytest.raises(FileNotFoundError):  # the builtin it resembles
        open_recording(path)


def test_store_layout_is_validated_and_recorded(tmp_path):
    with pytest.raises(ValueError, match="multiple of"):
        StoreLayout(frames_per_chunk=3, frames_per_shard=10)
    with pytest.raises(ValueError, match="1 to 100"):
        StoreLayout(rgb_quality=0)
    with pytest.raises(ValueError, match="depth_codec"):
        StoreLayout(depth_codec="lzw")  # type: ignore[arg-type]
    layout = StoreLayout(frames_per_shard=8, rgb_codec="zstd", depth_codec="zstd")
    src = smooth_source(num_frames=20)
    path = ingest(src, tmp_path, layout=layout, progress=False)
    ds = open_recording(path)
    assert ds.attrs["layout"]["frames_per_shard"] == 8
    np.testing.assert_array_equal(ds.rgb.values, src._arrays["rgb"])  # lossless rgb option
    meta = json.loads((path / "depth" / "zarr.json").read_text())
    assert meta["codecs"][0]["configuration"]["chunk_shape"][0] == 1


def test_dask_chunks_follow_the_inner_chunks(stored):
    _, path = stored
    ds = open_recording(path, chunks={})
    assert ds.depth.chunks[0][0] == 1
    assert int(ds.depth.isel(time=slice(0, 10)).sum().compute()) == int(ds.depth.values[:10].sum())


def test_list_recordings_shows_published_stores_only(tmp_path):
    store = tmp_path / "store"
    ingest(smooth_source(num_frames=5, path="a"), store, progress=False)
    ingest(smooth_source(num_frames=6, path="b"), store, progress=False)
    (store / ".c.zarr.partial").mkdir()
    table = list_recordings(store)
    assert list(table["name"]) == ["a", "b"]
    assert list(table["num_frames"]) == [5, 6]
    assert deepepil.list_recordings(store).shape[0] == 2


def test_recording_summary_names_streams_and_sizes(stored):
    from deepepil.recordings.store import recording_summary

    _, path = stored
    text = recording_summary(open_recording(path))
    assert "70 frames at 30 fps" in text
    for stream in ("rgb", "ir", "depth"):
        assert f"stream      {stream}" in text
    assert "fx=50.000" in text and "MB on disk" in text
    assert os.fspath(path) in text


def test_ingest_selected_streams_only(tmp_path):
    src = smooth_source(num_frames=10)
    ds = open_recording(ingest(src, tmp_path, streams=["depth", "ir"], progress=False))
    assert list(ds.data_vars) == ["ir", "depth"]
    with pytest.raises(ValueError, match="source has rgb, ir, depth"):
        ingest(smooth_source(num_frames=10, path="other"), tmp_path, streams=["thermal"], progress=False)
    assert not (tmp_path / "other.zarr").exists()
