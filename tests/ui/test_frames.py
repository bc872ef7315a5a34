"""FrameServer: the player's frames, encoded on the server, answered per the widgets README."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from deepepil.errors import ValidationError
from deepepil.recordings.encoding import encode_frame
from deepepil.recordings.ingest import ingest
from deepepil.recordings.store import open_recording
from deepepil.synthetic import make_patient_profile, make_recording
from deepepil.ui.frames import MAX_BATCH_FRAMES, FrameServer

N_FRAMES = 45  # 1.5 s at 30 fps: two shards of 32 frames


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """A tiny synthetic recording (IR and depth 64x53, RGB 96x54) ingested into a temporary store."""
    rec = make_recording(make_patient_profile(0, 0), 0, seconds=N_FRAMES / 30, size="tiny", seed=0)
    return ingest(rec, tmp_path_factory.mktemp("store"), progress=False)


@pytest.fixture(scope="module")
def ds(store_path):
    return open_recording(store_path)


@pytest.fixture
def server(ds):
    with FrameServer(ds) as s:
        yield s


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_streams_name_each_stream_with_its_image_size(server):
    assert server.streams() == [
        {"name": "rgb", "width": 96, "height": 54},
        {"name": "ir", "width": 64, "height": 53},
        {"name": "depth", "width": 64, "height": 53},
    ]


@pytest.mark.parametrize("stream, size", [("ir", (64, 53)), ("depth", (64, 53)), ("rgb", (96, 54))])
def test_batch_returns_one_decodable_jpeg_of_the_stream_size_per_index(server, ds, stream, size):
    mime, images, errors = server.batch(stream, [0, 7, 44])
    assert mime == "image/jpeg" and errors == {}
    assert len(images) == 3
    for index, data in zip([0, 7, 44], images):
        image = decode(data)
        assert image.format == "JPEG" and image.size == size
        assert data == encode_frame(ds, stream, index, "jpeg", quality=85)  # the same bytes as encode_frame


def test_frames_differ_over_time_so_the_right_index_is_sent(server):
    _, images, _ = server.batch("ir", [0, 40])
    a, b = (np.asarray(decode(d), dtype=int) for d in images)
    assert np.abs(a - b).mean() > 0.5


def test_threaded_and_serial_batches_give_identical_bytes_in_order(ds):
    indices = [5, 1, 30, 44, 2, 33]
    with FrameServer(ds, workers=1, cache_bytes=0) as serial, FrameServer(ds, workers=4, cache_bytes=0) as pooled:
        assert serial.batch("depth", indices) == pooled.batch("depth", indices)


def test_unknown_stream_is_refused_naming_the_streams_that_exist(server):
    with pytest.raises(ValidationError, match=r"no stream 'thermal'; it has: rgb, ir, depth"):
        server.batch("thermal", [0])
    with pytest.raises(ValidationError, match="no stream"):
        server.encode("thermal", 0)


def test_bad_indices_are_reported_per_frame_and_the_good_ones_still_come(server):
    mime, images, errors = server.batch("ir", [3, N_FRAMES, -1, 4, "x", 2.0, True])
    assert len(images) == 3  # 3, 4 and 2.0 (a JSON number may arrive as a float)
    assert set(errors) == {N_FRAMES, -1, "x", True}
    assert errors[N_FRAMES] == f"frame index {N_FRAMES} is outside the recording (0 to {N_FRAMES - 1})"
    assert "outside the recording (0 to 44)" in errors[-1]
    assert errors["x"] == "frame index must be an integer, got 'x'"
    assert decode(images[0]).size == (64, 53)
    with pytest.raises(IndexError, match="outside the recording"):
        server.encode("ir", N_FRAMES)


def test_options_and_batch_limits_are_validated(ds, server):
    with pytest.raises(ValidationError, match="use one of jpeg, png, webp"):
        FrameServer(ds, format="gif")
    with pytest.raises(ValidationError, match="quality must be from 1 to 100"):
        FrameServer(ds, quality=0)
    with pytest.raises(ValidationError, match="workers must be at least 1"):
        FrameServer(ds, workers=0)
    with pytest.raises(ValidationError, match=f"at most {MAX_BATCH_FRAMES} frames"):
        server.batch("ir", list(range(MAX_BATCH_FRAMES + 1)))
    with pytest.raises(ValidationError, match="indices must be a list"):
        server.batch("ir", 3)


def test_cache_is_bounded_by_bytes_and_serves_repeats(ds):
    one_frame = len(encode_frame(ds, "rgb", 0))
    with FrameServer(ds, cache_bytes=int(one_frame * 4.5)) as server:
        for index in range(20):
            server.encode("rgb", index)
        info = server.cache_info()
        assert info["bytes"] <= info["max_bytes"]
        assert 2 <= info["entries"] <= 6  # JPEG sizes vary a little frame to frame
        assert info["misses"] == 20 and info["hits"] == 0
        server.encode("rgb", 19)  # the most recent is kept ...
        assert server.cache_info()["hits"] == 1
        server.encode("rgb", 0)  # ... the oldest was dropped
        assert server.cache_info()["misses"] == 21
    with FrameServer(ds, cache_bytes=0) as server:
        server.encode("ir", 1)
        assert server.cache_info()["entries"] == 0


def test_handle_replies_per_the_readme_with_buffers_in_order(server, ds):
    content = {"type": "frames", "req": 17, "stream": "depth", "indices": [9, 99, 10], "format": "png"}
    reply, buffers = server.handle(content)
    assert reply.pop("encode_ms") >= 0  # the kernel's time, the player sizes its batches by it
    assert reply == {
        "type": "frames",
        "req": 17,
        "stream": "depth",
        "indices": [9, 99, 10],
        "mime": "image/png",
        "errors": {"99": f"frame index 99 is outside the recording (0 to {N_FRAMES - 1})"},
        "error": None,
    }
    assert buffers == [encode_frame(ds, "depth", 9, "png"), encode_frame(ds, "depth", 10, "png")]


@pytest.mark.parametrize(
    "content, message",
    [
        ({"stream": "thermal", "indices": [1, 2]}, "has no stream 'thermal'; it has: rgb, ir, depth"),
        ({"stream": "ir", "indices": [1, 2], "format": "bmp"}, "image format 'bmp' is not supported; use one of"),
        ({"stream": "ir", "indices": "1,2"}, "indices must be a list of frame indices, got str"),
        ({"indices": [1]}, "has no stream None"),
        ({"stream": "ir", "indices": [1], "format": ["jpeg"]}, "image format ['jpeg'] is not supported"),
    ],
)
def test_handle_answers_a_bad_request_with_a_clear_error_and_never_raises(server, content, message):
    reply, buffers = server.handle({"type": "frames", "req": 3, **content})
    assert buffers == []
    assert reply["type"] == "frames" and reply["req"] == 3
    assert message in reply["error"]
    assert reply["errors"] == {str(i): reply["error"] for i in reply["indices"]}


def test_a_frame_that_cannot_be_read_is_reported_and_the_others_still_come(store_path, tmp_path):
    broken = shutil.copytree(store_path, tmp_path / store_path.name)
    shard = broken / "depth" / "c" / "1" / "0" / "0"  # frames 32..44 of depth
    shard.write_bytes(np.random.default_rng(0).integers(0, 256, shard.stat().st_size, dtype=np.uint8).tobytes())
    with FrameServer(open_recording(broken)) as server:
        reply, buffers = server.handle({"type": "frames", "req": 1, "stream": "depth", "indices": [31, 32, 40]})
        assert set(reply["errors"]) == {"32", "40"}
        assert all(reply["errors"].values())
        assert len(buffers) == 1 and decode(buffers[0]).size == (64, 53)
        _, ir_images, ir_errors = server.batch("ir", [32, 40])  # other streams are untouched
        assert len(ir_images) == 2 and ir_errors == {}
