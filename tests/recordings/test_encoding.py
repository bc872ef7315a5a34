"""encode_frame: browser-ready bytes for every stream, with stated display ranges."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepepil.recordings import encode_frame
from deepepil.recordings.encoding import VIRIDIS_LUT, colorize_depth, scale_ir
from deepepil.recordings.ingest import ingest
from deepepil.recordings.source import ArraySource
from deepepil.recordings.store import open_recording


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    rng = np.random.default_rng(0)
    depth = np.full((6, 40, 50), 2200, np.uint16)  # the floor, around the bed
    depth[:, 8:32, 10:40] = 1600  # the bed
    depth[:, 14:26, 12:25] = 1400  # a patient on it, left side
    depth[:, 0, 0] = 0  # a hole
    ir = rng.integers(0, 3000, (6, 40, 50), dtype=np.uint16)
    rgb = np.zeros((6, 30, 60, 3), np.uint8)
    rgb[..., 0] = 200
    src = ArraySource({"rgb": rgb, "ir": ir, "depth": depth}, fps=30.0, path="enc")
    return open_recording(ingest(src, tmp_path_factory.mktemp("store"), progress=False))


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("fmt, magic", [("jpeg", b"\xff\xd8"), ("png", b"\x89PNG"), ("webp", b"RIFF")])
@pytest.mark.parametrize("stream", ["rgb", "ir", "depth"])
def test_every_stream_encodes_to_a_decodable_image_of_the_frame_size(ds, stream, fmt, magic):
    data = encode_frame(ds, stream, 3, format=fmt)
    assert isinstance(data, bytes) and data.startswith(magic)
    image = decode(data)
    assert image.shape[:2] == ds[stream].shape[1:3]


def test_depth_colormap_near_is_bright_and_holes_are_black(ds):
    image = decode(encode_frame(ds, "depth", 0, format="png", depth_range_mm=(500, 2500))).astype(int)
    near, far = image[20, 15], image[20, 30]
    assert near.sum() > far.sum()
    np.testing.assert_array_equal(image[0, 0], [0, 0, 0])
    # png is lossless: the near pixel is exactly the LUT entry for 1400 mm in 500..2500
    np.testing.assert_array_equal(near, VIRIDIS_LUT[int((2500 - 1400) * 255 / 2000)])


def test_ingest_measures_display_ranges_and_encode_uses_them(ds):
    lo, hi = ds.attrs["display"]["depth_range_mm"]
    # from the patient to just behind the bed: the floor around it does not squash the contrast
    assert lo < 1400 and 1600 < hi < 2000
    default = encode_frame(ds, "depth", 0, format="png")
    stated = encode_frame(ds, "depth", 0, format="png", depth_range_mm=(lo, hi))
    assert default == stated


def test_ir_scaling_is_monotonic_and_saturates():
    ir = np.array([[0, 100, 1000, 3000, 60000]], np.uint16)
    out = scale_ir(ir, (0, 3000))
    assert out.dtype == np.uint8 and list(out[0]) == sorted(out[0]) and out[0, 0] == 0 and out[0, -1] == 255


def test_bad_requests_say_what_is_allowed(ds):
    with pytest.raises(KeyError, match="has no stream 'thermal'; it has: rgb, ir, depth"):
        encode_frame(ds, "thermal", 0)
    with pytest.raises(IndexError, match="0 to 5"):
        encode_frame(ds, "ir", 6)
    with pytest.raises(ValueError, match="format must be one of"):
        encode_frame(ds, "ir", 0, format="gif")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="high > low"):
        colorize_depth(np.zeros((2, 2), np.uint16), (3000, 1000))
