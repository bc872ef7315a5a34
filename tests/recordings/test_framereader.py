"""The fast single-frame path gives exactly what xarray gives, for every stream and layout."""

from __future__ import annotations

import numpy as np
import pytest

from deepepil.recordings.framereader import FrameReader, read_frame
from deepepil.recordings.ingest import ingest
from deepepil.recordings.source import ArraySource
from deepepil.recordings.store import StoreLayout, open_recording


def source(num_frames=45, path="fr"):
    rng = np.random.default_rng(3)
    depth = rng.integers(500, 4500, (num_frames, 24, 32), dtype=np.uint16)
    depth[:, :3] = 0
    depth[min(7, num_frames - 1)] = 0  # an all-zero frame
    rgb = np.repeat(np.linspace(0, 255, 40, dtype=np.uint8)[None, None, :, None], 3, axis=3)
    rgb = np.broadcast_to(rgb, (num_frames, 20, 40, 3)).copy()
    ir = rng.integers(0, 3000, (num_frames, 24, 32), dtype=np.uint16)
    return ArraySource({"rgb": rgb, "ir": ir, "depth": depth}, fps=30.0, path=path)


@pytest.mark.parametrize(
    "layout",
    [StoreLayout(), StoreLayout(frames_per_shard=8, depth_codec="pred2d-zstd"), StoreLayout(rgb_codec="zstd")],
    ids=["default", "pred2d-8", "lossless-rgb"],
)
def test_fast_path_equals_xarray_for_every_frame(tmp_path, layout):
    ds = open_recording(ingest(source(), tmp_path, layout=layout, progress=False))
    for stream in ("rgb", "ir", "depth"):
        reader = FrameReader(ds.attrs["path"], stream)
        expected = ds[stream].values
        for i in range(ds.sizes["time"]):
            np.testing.assert_array_equal(reader[i], expected[i], err_msg=f"{stream} frame {i}")
        np.testing.assert_array_equal(read_frame(ds, stream, -1), expected[-1])


@pytest.mark.parametrize("layout", [StoreLayout(), StoreLayout(frames_per_shard=8)], ids=["default", "shards-of-8"])
def test_read_frames_equals_xarray_in_any_order(tmp_path, layout):
    ds = open_recording(ingest(source(), tmp_path, layout=layout, progress=False))
    n = ds.sizes["time"]
    indices = [n - 1, 0, 3, 3, -2, 9 % n]  # unsorted, repeated, negative, across shards
    for stream in ("rgb", "ir", "depth"):
        frames = FrameReader(ds.attrs["path"], stream).read_frames(indices)
        np.testing.assert_array_equal(frames, ds[stream].values[indices], err_msg=stream)
    with pytest.raises(IndexError, match=f"frame index {n} is outside the recording"):
        FrameReader(ds.attrs["path"], "ir").read_frames([0, n])


def test_unsupported_layout_falls_back_to_xarray(tmp_path):
    layout = StoreLayout(frames_per_chunk=4, frames_per_shard=8)
    ds = open_recording(ingest(source(), tmp_path, layout=layout, progress=False))
    with pytest.raises(ValueError, match="single whole frames"):
        FrameReader(ds.attrs["path"], "depth")
    np.testing.assert_array_equal(read_frame(ds, "depth", 9), ds.depth.values[9])


def test_bad_requests_name_what_is_allowed(tmp_path):
    ds = open_recording(ingest(source(num_frames=5), tmp_path, progress=False))
    with pytest.raises(IndexError, match="0 to 4"):
        read_frame(ds, "ir", 5)
    with pytest.raises(KeyError, match="it has: rgb, ir, depth"):
        read_frame(ds, "eeg", 0)


def test_rgb_jpeg_for_display_is_the_stored_frame(tmp_path):
    """encode_frame sends a JPEG-stored colour frame as stored: the same pixels as a full decode."""
    import io

    from PIL import Image

    from deepepil.recordings.encoding import encode_frame
    from deepepil.recordings.framereader import stored_jpeg
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 255, (3, 48, 64, 3), dtype=np.uint8)
    ir = rng.integers(0, 3000, (3, 24, 32), dtype=np.uint16)
    src = ArraySource({"rgb": rgb, "ir": ir, "depth": ir}, fps=30.0, path="colour")
    ds = open_recording(ingest(src, tmp_path, progress=False))
    for index in (0, -1):
        data = encode_frame(ds, "rgb", index)
        assert data == stored_jpeg(ds, "rgb", index)
        with Image.open(io.BytesIO(data)) as im:
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), read_frame(ds, "rgb", index))
    assert stored_jpeg(ds, "ir", 0) is None  # not JPEG-coded: encode_frame renders it
    with pytest.raises(IndexError, match="outside the recording"):
        stored_jpeg(ds, "rgb", ds.sizes["time"])
