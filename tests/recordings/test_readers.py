"""Conformance suite for recording readers and their writers.

:class:`ReaderConformance` holds the tests every reader must pass (round trip through its
writer, metadata before decoding, lazy open, truncation, bad timestamps); each format
subclasses it with a ``write`` method and a few class attributes. Inputs are built with
:func:`make_source` (deterministic synthetic frames), so every test is small and fast.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from deepepil.errors import (
    CorruptSourceError,
    FrameMismatchError,
    TimestampError,
    UnknownFormatError,
)
from deepepil.recordings.calibration import default_calibration
from deepepil.recordings.readers import (
    BUILTIN_READERS,
    _discover,
    get_reader,
    guess_reader,
    list_readers,
    open_source,
)
from deepepil.recordings.readers.azure_kinect import AzureKinectReader, write_azure_kinect_mkv
from deepepil.recordings.readers.frames import FramesReader, write_frames_folder
from deepepil.recordings.readers.numpy import NumpyReader, write_numpy
from deepepil.recordings.readers.video import VideoReader, write_video
from deepepil.recordings.source import ArraySource, Frame, RecordingSource

FPS = 30.0


def make_source(
    num_frames: int = 12,
    height: int = 48,
    width: int = 64,
    *,
    streams: tuple[str, ...] = ("rgb", "ir", "depth"),
    timestamps_seconds: np.ndarray | None = None,
    calibration: bool = True,
) -> ArraySource:
    """Deterministic frames: smooth gradients with a moving square; depth in mm with noise and holes."""
    y, x = np.mgrid[0:height, 0:width].astype("float64")
    rng = np.random.default_rng(1234)
    arrays: dict[str, np.ndarray] = {}
    for t in range(num_frames):
        sq_y, sq_x = slice(height // 4, height // 4 + height // 5), slice(2 * t % width, 2 * t % width + width // 6)
        if "rgb" in streams:
            frame = np.empty((height, width, 3), dtype="uint8")
            frame[..., 0] = 40 + 180 * x / width
            frame[..., 1] = 30 + 160 * y / height
            frame[..., 2] = 90 + 60 * np.sin(2 * np.pi * (x + y + 3 * t) / width)
            frame[sq_y, sq_x] = (230, 200, 60)
            arrays.setdefault("rgb", np.empty((num_frames, height, width, 3), "uint8"))[t] = frame
        if "ir" in streams:
            ir = (300 + 20000 * (x / width) * (y / height) + 50 * t).astype("uint16")
            ir[sq_y, sq_x] = 60000
            arrays.setdefault("ir", np.empty((num_frames, height, width), "uint16"))[t] = ir
        if "depth" in streams:
            depth = 2500 + 1500 * y / height + rng.normal(0, 8, (height, width))
            depth[sq_y, sq_x] -= 600
            depth = np.clip(depth, 0, 4500).astype("uint16")
            depth[rng.random((height, width)) < 0.02] = 0  # sensor holes
            arrays.setdefault("depth", np.empty((num_frames, height, width), "uint16"))[t] = depth
    cal = None
    if calibration:
        cal = default_calibration((width, height), (width, height) if "rgb" in streams else None)
        cal.update(is_default=False, device="test-rig")
        cal["depth"]["fx"] = 51.25  # something the defaults would not produce
    return ArraySource({s: arrays[s] for s in streams}, FPS, timestamps_seconds=timestamps_seconds,
                       calibration=cal, attrs={"subject": "synthetic-001"}, path="<make_source>")


def drain(path: Path, reader: str) -> dict[str, list[Frame]]:
    """Open ``path`` and decode every frame of every stream."""
    with open_source(path, reader=reader) as src:
        return {name: list(src.iter_frames(name)) for name in src.streams}


class FailingSource(RecordingSource):
    """Yields a few frames of ``inner`` and then fails, like a reader hitting a disk error."""

    def __init__(self, inner: RecordingSource, fail_after: int) -> None:
        self.path, self.streams = inner.path, inner.streams
        self.calibration, self.attrs = inner.calibration, inner.attrs
        self._inner, self._fail_after = inner, fail_after

    def iter_frames(self, stream: str) -> Iterator[Frame]:
        for frame in self._inner.iter_frames(stream):
            if frame.index == self._fail_after:
                raise RuntimeError("disk on fire")
            yield frame


class ReaderConformance:
    """Tests every reader/writer pair must pass. Subclasses set the attributes and ``write``."""

    #: Name the reader is registered under.
    reader_name: ClassVar[str]
    #: Streams the format carries (the test source holds exactly these).
    streams: ClassVar[tuple[str, ...]] = ("rgb", "ir", "depth")
    #: Streams that must round-trip bit-exactly.
    lossless_streams: ClassVar[tuple[str, ...]] = ("rgb", "ir", "depth")
    #: Mean absolute error allowed for lossy rgb (0-255 scale) on smooth content.
    rgb_mean_abs_error: ClassVar[float] = 4.0
    #: Timestamps come back within this many seconds (container time bases round).
    timestamp_tolerance_seconds: ClassVar[float] = 1e-9
    #: The format stores calibration; otherwise the reader returns the default.
    stores_calibration: ClassVar[bool] = True
    #: A truncated file still says how many frames it should hold (header at the front),
    #: so the error must name the first missing frame.
    truncation_names_frame: ClassVar[bool] = True

    def write(self, source: RecordingSource, tmp_path: Path) -> Path:
        """Write ``source`` in this format under ``tmp_path``; return what the reader opens."""
        raise NotImplementedError

    def truncate(self, written: Path) -> Path:
        """Damage ``written`` as a cut-off copy would be; return the damaged file."""
        data = written.read_bytes()
        written.write_bytes(data[: len(data) // 2])
        return written

    @pytest.fixture
    def source(self) -> ArraySource:
        return make_source(streams=self.streams)

    @pytest.fixture
    def written(self, source: ArraySource, tmp_path: Path) -> Path:
        return self.write(source, tmp_path)

    # -- registry ---------------------------------------------------------------------------

    def test_guess_reader_picks_this_reader(self, written: Path) -> None:
        assert guess_reader(written).name == self.reader_name

    def test_listed_with_metadata(self) -> None:
        reader = list_readers()[self.reader_name]
        assert reader is get_reader(self.reader_name)
        assert reader.name == self.reader_name and reader.description and reader.url

    def test_guess_never_raises_on_odd_paths(self, tmp_path: Path) -> None:
        reader = get_reader(self.reader_name)
        for odd in (tmp_path / "missing.mkv", tmp_path, tmp_path / "x\0y", ""):
            assert reader.guess_can_open(odd) in (True, False)

    # -- metadata and round trip ------------------------------------------------------------

    def test_metadata_matches_source(self, source: ArraySource, written: Path) -> None:
        with open_source(written, reader=self.reader_name) as src:
            assert list(src.streams) == list(source.streams)
            for name, expected in source.streams.items():
                got = src.streams[name]
                assert (got.frame_shape, got.dtype, got.num_frames) == (
                    expected.frame_shape, expected.dtype, expected.num_frames
                ), name
                assert got.fps == pytest.approx(expected.fps, rel=1e-4)
            assert src.attrs["source_format"] == self.reader_name
            json.dumps(src.attrs)
            json.dumps(src.calibration)

    def test_round_trip(self, source: ArraySource, written: Path) -> None:
        frames = drain(written, self.reader_name)
        for name in source.streams:
            got = np.stack([f.data for f in frames[name]])
            expected = source._arrays[name]
            assert [f.index for f in frames[name]] == list(range(len(expected)))
            assert all(f.data.flags.writeable for f in frames[name]), "frames must be writable arrays"
            assert got.dtype == expected.dtype and got.shape == expected.shape
            if name in self.lossless_streams:
                np.testing.assert_array_equal(got, expected, err_msg=f"{name} is not bit-exact")
            else:
                error = np.abs(got.astype("int16") - expected.astype("int16")).mean()
                assert error < self.rgb_mean_abs_error, f"{name} mean abs error {error:.2f}"

    def test_timestamps_match(self, source: ArraySource, written: Path) -> None:
        expected = source.timestamps_seconds
        with open_source(written, reader=self.reader_name) as src:
            exposed = src.timestamps_seconds
            for name in source.streams:
                n = source.streams[name].num_frames
                pts = np.array([f.pts_seconds for f in src.iter_frames(name)])
                np.testing.assert_allclose(pts, expected[:n], rtol=0, atol=self.timestamp_tolerance_seconds)
                np.testing.assert_allclose(exposed[name], pts, rtol=0, atol=1e-9)

    def test_calibration(self, source: ArraySource, written: Path) -> None:
        with open_source(written, reader=self.reader_name) as src:
            if self.stores_calibration:
                assert src.calibration == source.calibration
            else:
                assert src.calibration["is_default"] is True
                depth_like = next((s for s in ("depth", "ir") if s in source.streams), None)
                if depth_like:
                    h, w = source.streams[depth_like].frame_shape[:2]
                    assert (src.calibration["depth"]["width"], src.calibration["depth"]["height"]) == (w, h)

    def test_missing_calibration_gives_default(self, tmp_path: Path) -> None:
        written = self.write(make_source(streams=self.streams, calibration=False), tmp_path)
        with open_source(written, reader=self.reader_name) as src:
            assert src.calibration["is_default"] is True
            for key, stream in (("rgb", "rgb"), ("depth", "depth" if "depth" in src.streams else "ir")):
                if stream in src.streams:
                    h, w = src.streams[stream].frame_shape[:2]
                    assert (src.calibration[key]["width"], src.calibration[key]["height"]) == (w, h)

    def test_iterating_twice_and_stopping_early(self, written: Path) -> None:
        with open_source(written, reader=self.reader_name) as src:
            name = self.streams[-1]
            first = next(iter(src.iter_frames(name)))
            again = list(src.iter_frames(name))
            np.testing.assert_array_equal(first.data, again[0].data)

    # -- laziness ---------------------------------------------------------------------------

    def test_open_and_iterate_are_lazy(self, tmp_path: Path) -> None:
        # 60 frames of 128x96: ~5 MB decoded. Opening must not decode them and iterating
        # must not accumulate them (numpy allocations are traced by tracemalloc).
        source = make_source(60, 96, 128, streams=self.streams)
        written = self.write(source, tmp_path)
        total = sum(int(np.prod(a.shape)) * a.itemsize for a in source._arrays.values())
        tracemalloc.start()
        try:
            started = time.perf_counter()
            src = open_source(written, reader=self.reader_name)
            _ = dict(src.streams), src.calibration, src.attrs
            open_seconds = time.perf_counter() - started
            _, open_peak = tracemalloc.get_traced_memory()
            assert open_peak < total / 5, f"open() allocated {open_peak} bytes of {total} decoded"
            for name, info in src.streams.items():
                stream_bytes = int(np.prod(info.frame_shape)) * np.dtype(info.dtype).itemsize * info.num_frames
                tracemalloc.reset_peak()
                base, _ = tracemalloc.get_traced_memory()
                count = sum(1 for _ in src.iter_frames(name))
                _, peak = tracemalloc.get_traced_memory()
                assert count == info.num_frames
                assert peak - base < stream_bytes / 4, f"{name}: iterating held {peak - base} of {stream_bytes} bytes"
            src.close()
        finally:
            tracemalloc.stop()
        assert open_seconds < 2.0

    # -- damaged and bad input --------------------------------------------------------------

    def test_truncated_file_raises(self, written: Path) -> None:
        damaged = self.truncate(written)
        n = make_source(streams=self.streams).streams[self.streams[0]].num_frames
        with pytest.raises(CorruptSourceError) as raised:
            drain(written, self.reader_name)
        assert damaged.name in str(raised.value)
        if self.truncation_names_frame:
            assert raised.value.frame_index is not None and 0 <= raised.value.frame_index < n
            assert f"frame {raised.value.frame_index}" in str(raised.value)

    @pytest.mark.parametrize("problem", ["gap", "not_increasing"])
    def test_bad_timestamps_raise(self, problem: str, tmp_path: Path) -> None:
        times = np.arange(12) / FPS
        if problem == "gap":
            times[5:] += 2.5 / FPS  # two frames missing before frame 5
        else:
            times[5] = times[3]
        try:
            written = self.write(make_source(streams=self.streams, timestamps_seconds=times), tmp_path)
        except ValueError as exc:  # a writer may refuse what its format cannot hold
            assert problem == "not_increasing" and "frame 5" in str(exc)
            return
        with pytest.raises(TimestampError) as raised:
            drain(written, self.reader_name)
        assert raised.value.frame_index == 5

    def test_writer_refuses_existing_target(self, source: ArraySource, written: Path, tmp_path: Path) -> None:
        before = written.stat().st_mtime_ns
        with pytest.raises(FileExistsError, match=str(written.name)):
            self.write(source, tmp_path)
        assert written.stat().st_mtime_ns == before

    def test_failed_write_leaves_nothing(self, source: ArraySource, tmp_path: Path) -> None:
        target_dir = tmp_path / "out"
        target_dir.mkdir()
        with pytest.raises(RuntimeError, match="disk on fire"):
            self.write(FailingSource(source, fail_after=3), target_dir)
        assert list(target_dir.iterdir()) == []


# -- one subclass per format -----------------------------------------------------------------


class TestAzureKinect(ReaderConformance):
    reader_name = "azure_kinect"
    lossless_streams = ("ir", "depth")
    timestamp_tolerance_seconds = 1e-6  # microsecond ticks

    def write(self, source: RecordingSource, tmp_path: Path) -> Path:
        return write_azure_kinect_mkv(source, tmp_path / "P001_S01.mkv")

    def test_tracks_read_by_pyav_as_the_recorder_writes_them(self, written: Path) -> None:
        import av

        with av.open(str(written)) as container:
            tracks = {s.metadata["title"]: s for s in container.streams.video}
            assert set(tracks) == {"COLOR", "DEPTH", "IR"}
            assert tracks["COLOR"].codec_context.name == "mjpeg"
            for title in ("DEPTH", "IR"):
                assert tracks[title].codec_context.codec_tag == "b16g"
                assert tracks[title].format.name == "gray16be"
                assert tracks[title].time_base.denominator == 1_000_000
            (attachment,) = [a for a in container.streams.attachments if a.name == "calibration.json"]
            assert json.loads(attachment.data)["depth"]["fx"] == 51.25
            # Cues let FFmpeg seek straight to a frame.
            container.seek(200_000, stream=tracks["DEPTH"])
            frame = next(container.decode(tracks["DEPTH"]))
            assert frame.pts == pytest.approx(200_000, abs=1)
            np.testing.assert_array_equal(frame.to_ndarray(format="gray16le"), make_source().
                                          _arrays["depth"][6])

    def test_only_kinect_style_mkv_is_guessed(self, tmp_path: Path) -> None:
        plain = write_video(make_source(streams=("rgb",))._arrays["rgb"], tmp_path / "plain.mkv", FPS)
        assert not AzureKinectReader().guess_can_open(plain)
        assert guess_reader(plain).name == "video"

    def test_damaged_block_names_frame(self, written: Path) -> None:
        with open_source(written, reader="azure_kinect") as src:
            frames = list(src.iter_frames("depth"))
        needle = frames[7].data.astype(">u2").tobytes()[:64]
        data = bytearray(written.read_bytes())
        at = data.index(needle)
        data[at - 200: at + 20] = b"\xff" * 220  # wreck the block header and its neighbour
        written.write_bytes(bytes(data))
        with pytest.raises(CorruptSourceError) as raised:
            drain(written, "azure_kinect")
        assert raised.value.frame_index is not None


class TestVideoMP4(ReaderConformance):
    reader_name = "video"
    streams = ("rgb",)
    lossless_streams = ()
    rgb_mean_abs_error = 6.0
    timestamp_tolerance_seconds = 1e-5  # 1/90000 s ticks
    stores_calibration = False
    truncation_names_frame = False  # the moov index sits at the end: the cut file will not open

    def write(self, source: RecordingSource, tmp_path: Path) -> Path:
        return write_video(source.iter_frames("rgb"), tmp_path / "P001_S01.mp4", FPS, gop=250, crf=18)

    def test_gop_and_codec(self, written: Path) -> None:
        import av

        with av.open(str(written)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            keyframes = [p.is_keyframe for p in container.demux(video=0) if p.size]
        assert keyframes[0] and sum(keyframes) == 1  # one GOP for 12 frames

    def test_write_video_validates(self, tmp_path: Path) -> None:
        depth = make_source(streams=("depth",))._arrays["depth"]
        with pytest.raises(ValueError, match="ffv1"):
            write_video(depth, tmp_path / "d.mp4", FPS, codec="libx264")
        with pytest.raises(ValueError, match="suffix"):
            write_video(depth, tmp_path / "d.webmx", FPS, codec="ffv1")
        assert list(tmp_path.iterdir()) == []


class TestVideoFFV1Depth(ReaderConformance):
    reader_name = "video"
    streams = ("depth",)
    lossless_streams = ("depth",)
    timestamp_tolerance_seconds = 5e-4  # FFmpeg's Matroska muxer stores milliseconds
    stores_calibration = False

    def write(self, source: RecordingSource, tmp_path: Path) -> Path:
        return write_video(source.iter_frames("depth"), tmp_path / "P001_S01_depth.mkv", FPS, codec="ffv1",
                           num_frames=source.streams["depth"].num_frames)

    @pytest.mark.parametrize("stem, title, expected", [
        ("clip_ir", None, "ir"), ("clip", None, "depth"), ("clip", "IR", "ir"),
    ])
    def test_stream_naming(self, tmp_path: Path, stem: str, title: str | None, expected: str) -> None:
        depth = make_source(4, streams=("depth",))._arrays["depth"]
        path = write_video(depth, tmp_path / f"{stem}.mkv", FPS, codec="ffv1", title=title)
        with open_source(path) as src:
            assert list(src.streams) == [expected]
            np.testing.assert_array_equal(next(iter(src.iter_frames(expected))).data, depth[0])


class TestFramesMP4(ReaderConformance):
    reader_name = "frames"
    lossless_streams = ("ir", "depth")
    rgb_mean_abs_error = 6.0

    def write(self, source: RecordingSource, tmp_path: Path) -> Path:
        return write_frames_folder(source, tmp_path / "P001_S01", rgb_as="mp4")

    def truncate(self, written: Path) -> Path:
        damaged = written / "depth" / "000006.png"
        damaged.write_bytes(damaged.read_bytes()[:200])
        return damaged


class TestFramesPNG(TestFramesMP4):
    lossless_streams = ("rgb", "ir", "depth")

    def write(self, source: RecordingSource, tmp_path: Path) -> Path:
        return write_frames_folder(source, tmp_path / "P001_S01", rgb_as="png")

    def test_layout(self, written: Path) -> None:
        assert sorted(p.name for p in written.iterdir()) == [
            "calibration.json", "depth", "ir", "meta.json", "rgb", "timestamps.csv",
        ]
        assert (written / "timestamps.csv").read_text().splitlines()[:2] == ["frame_index,time_seconds", "0,0.0"]
        with Image.open(written / "depth" / "000000.png") as img:
            assert img.mode == "I;16"

    def test_frame_of_other_size_names_file_and_frame(self, written: Path) -> None:
        Image.fromarray(np.zeros((10, 12), "uint16")).save(written / "depth" / "000004.png")
        with pytest.raises(FrameMismatchError) as raised:
            drain(written, "frames")
        assert raised.value.frame_index == 4 and "000004.png" in str(raised.value)

    def test_gap_in_numbering_names_frame(self, written: Path) -> None:
        (written / "ir" / "000004.png").unlink()
        with pytest.raises(TimestampError) as raised:
            open_source(written)
        assert raised.value.frame_index == 4 and "000005.png" in str(raised.value)

    def test_timestamps_csv_of_wrong_length(self, written: Path) -> None:
        lines = (written / "timestamps.csv").read_text().splitlines()
        (written / "timestamps.csv").write_text("\n".join(lines[:-2]) + "\n")
        with pytest.raises(FrameMismatchError, match="timestamps.csv"):
            open_source(written)

    def test_jpeg_rgb(self, source: ArraySource, tmp_path: Path) -> None:
        path = write_frames_folder(source, tmp_path / "jpeg", rgb_as="jpeg")
        assert (path / "rgb" / "000000.jpg").is_file()
        got = np.stack([f.data for f in drain(path, "frames")["rgb"]])
        assert np.abs(got.astype(int) - source._arrays["rgb"]).mean() < 4

    def test_invalid_rgb_as(self, source: ArraySource, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="'mp4', 'png', 'jpeg'"):
            write_frames_folder(source, tmp_path / "x", rgb_as="gif")  # type: ignore[arg-type]

    def test_fps_and_timestamps_default_without_side_files(self, written: Path) -> None:
        for name in ("timestamps.csv", "meta.json", "calibration.json"):
            (written / name).unlink()
        with open_source(written) as src:
            assert src.streams["depth"].fps == 30.0 and src.attrs["fps_assumed"] is True
            np.testing.assert_allclose(src.timestamps_seconds["ir"], np.arange(12) / 30.0)
            assert src.calibration["is_default"] is True


class TestNumpyNpz(ReaderConformance):
    reader_name = "numpy"
    truncation_names_frame = False  # the zip directory sits at the end: the cut file will not open

    def write(self, source: RecordingSource, tmp_path: Path) -> Path:
        return write_numpy(source, tmp_path / "P001_S01.npz")

    def test_plain_np_savez_opens(self, source: ArraySource, tmp_path: Path) -> None:
        path = tmp_path / "plain.npz"
        np.savez_compressed(path, depth=source._arrays["depth"], time_seconds=np.arange(12) / 25.0)
        with open_source(path) as src:
            assert src.streams["depth"].fps == pytest.approx(25.0)
            np.testing.assert_array_equal(np.stack([f.data for f in src.iter_frames("depth")]),
                                          source._arrays["depth"])

    def test_wrong_dtype_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "float.npz"
        np.savez(path, depth=np.zeros((3, 4, 5), "float32"))
        with pytest.raises(FrameMismatchError, match="float32"):
            open_source(path)

    def test_corrupt_member_names_frame(self, source: ArraySource, tmp_path: Path) -> None:
        path = write_numpy(source, tmp_path / "c.npz", compress=True)
        data = bytearray(path.read_bytes())
        start = data.index(b"depth.npy") + 9  # first local header's name; data follows
        data[start + 2000: start + 2100] = bytes(100)
        path.write_bytes(bytes(data))
        with pytest.raises(CorruptSourceError) as raised:
            drain(path, "numpy")
        assert raised.value.frame_index is not None and "c.npz" in str(raised.value)


class TestNumpyFolder(ReaderConformance):
    reader_name = "numpy"

    def write(self, source: RecordingSource, tmp_path: Path) -> Path:
        return write_numpy(source, tmp_path / "P001_S01")

    def truncate(self, written: Path) -> Path:
        return super().truncate(written / "depth.npy")

    def test_arrays_are_plain_npy(self, source: ArraySource, written: Path) -> None:
        np.testing.assert_array_equal(np.load(written / "ir.npy", mmap_mode="r"), source._arrays["ir"])


# -- registry, plugins and inputs no reader accepts ---------------------------------------------


def test_builtin_readers_are_registered() -> None:
    readers = list_readers()
    assert list(readers)[: len(BUILTIN_READERS)] == list(BUILTIN_READERS)
    for cls in (AzureKinectReader, VideoReader, FramesReader, NumpyReader):
        assert isinstance(readers[cls.name], cls)


def test_empty_folder_lists_installed_readers(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError) as raised:
        guess_reader(tmp_path)
    for name in BUILTIN_READERS:
        assert name in str(raised.value)
    assert str(tmp_path) in str(raised.value)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_garbage_with_video_suffix(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(CorruptSourceError, match=f"garbage{suffix}"):
        drain(path, guess_reader(path).name)


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    """Forget discovered plugins before and after the test (it changes sys.path)."""
    _discover.cache_clear()
    yield
    _discover.cache_clear()


def test_reader_plugin_through_entry_point(fresh_registry: None, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "deepepil_fake_reader.py").write_text(textwrap.dedent("""
        import numpy as np
        from deepepil.recordings.readers.base import Reader
        from deepepil.recordings.source import ArraySource

        class FakeReader(Reader):
            name = "fake"
            description = "test plugin"
            url = "https://example.invalid/fake"

            def guess_can_open(self, path):
                return str(path).endswith(".fake")

            def open(self, path):
                return ArraySource({"depth": np.full((2, 4, 4), 7, "uint16")}, 30.0, path=str(path))
    """))
    dist = site / "deepepil_fake_reader-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: deepepil-fake-reader\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[deepepil.readers]\n"
        "fake = deepepil_fake_reader:FakeReader\n"
        "broken = deepepil_no_such_module:Reader\n"
        "video = deepepil_fake_reader:FakeReader\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "deepepil_fake_reader", raising=False)
    with pytest.warns(RuntimeWarning) as caught:
        readers = list_readers()
    messages = " ".join(str(w.message) for w in caught)
    assert "'broken' failed to load" in messages and "'video'" in messages and "already" in messages
    assert set(BUILTIN_READERS) < set(readers) and "broken" not in readers
    assert isinstance(readers["video"], VideoReader)  # a plugin cannot replace a built-in
    target = tmp_path / "clip.fake"
    target.write_bytes(b"")
    assert guess_reader(target).name == "fake"
    with open_source(target) as src:
        assert next(iter(src.iter_frames("depth"))).data[0, 0] == 7


def test_streams_of_different_lengths_round_trip(tmp_path: Path) -> None:
    full = make_source(12)
    source = ArraySource({"rgb": full._arrays["rgb"][:10], "depth": full._arrays["depth"]}, FPS,
                         calibration=full.calibration)
    for write, name in ((write_numpy, "n.npz"), (write_azure_kinect_mkv, "k.mkv")):
        path = write(source, tmp_path / name)
        with open_source(path) as src:
            assert {s: i.num_frames for s, i in src.streams.items()} == {"rgb": 10, "depth": 12}
            assert len(list(src.iter_frames("rgb"))) == 10


def test_readers_do_not_leak_open_files(tmp_path: Path) -> None:
    source = make_source(4)
    paths = [write_azure_kinect_mkv(source, tmp_path / "k.mkv"), write_numpy(source, tmp_path / "n.npz"),
             write_frames_folder(source, tmp_path / "f")]
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc")
    before = len(os.listdir(fd_dir))
    for path in paths:
        drain(path, guess_reader(path).name)
        with open_source(path) as src:
            next(iter(src.iter_frames("rgb")))
    assert len(os.listdir(fd_dir)) <= before


# -- files as the Azure Kinect recorder writes them --------------------------------------------


def _recorder_style_mkv(path: Path, rgb: np.ndarray, depth: np.ndarray, *, color: str,
                        calibration: dict | None) -> Path:
    """An MKV laid out like k4arecorder's: VFW colour track, K4A tags, no frame-count tags."""
    import av

    from deepepil.recordings.readers._matroska import MatroskaWriter, TrackSpec, bitmap_info_header

    (ch, cw), (dh, dw) = rgb.shape[1:3], depth.shape[1:3]
    bits = {"MJPG": 24, "NV12": 12}[color]
    tracks = [
        TrackSpec(1, 11, "COLOR", "V_MS/VFW/FOURCC", cw, ch, 33_333_333,
                  bitmap_info_header(cw, ch, color.encode(), bits), tags={"K4A_COLOR_TRACK": "11"}),
        TrackSpec(2, 22, "DEPTH", "V_MS/VFW/FOURCC", dw, dh, 33_333_333,
                  bitmap_info_header(dw, dh, b"b16g", 16), tags={"K4A_DEPTH_TRACK": "22"}),
        TrackSpec(3, 33, "IR", "V_MS/VFW/FOURCC", dw, dh, 33_333_333,
                  bitmap_info_header(dw, dh, b"b16g", 16), tags={"K4A_IR_TRACK": "33"}),
    ]
    attachments = [("calibration.json", "application/octet-stream", json.dumps(calibration).encode())] \
        if calibration else []
    with open(path, "wb") as f:
        writer = MatroskaWriter(f, tracks, attachments=attachments, frame_count_tags=False,
                                global_tags={"K4A_DEVICE_SERIAL_NUMBER": "000123456789"})
        for t in range(len(rgb)):
            start = 1.25 + t / FPS  # device timestamps do not start at zero
            if color == "MJPG":
                import io
                buf = io.BytesIO()
                Image.fromarray(rgb[t]).save(buf, format="JPEG", quality=92)
                payload = buf.getvalue()
            else:
                payload = av.VideoFrame.from_ndarray(rgb[t], format="rgb24").reformat(format="nv12").to_ndarray()
                payload = np.ascontiguousarray(payload).tobytes()
            writer.write_block(1, start, payload)
            writer.write_block(2, start, depth[t].astype(">u2").tobytes())
            writer.write_block(3, start, (depth[t] // 2).astype(">u2").tobytes())
        writer.close()
    return path


def _raw_k4a_calibration() -> dict:
    def camera(location: str, width: int, height: int, params: list[float]) -> dict:
        return {"Intrinsics": {"ModelParameterCount": 14, "ModelParameters": params,
                               "ModelType": "CALIBRATION_LensDistortionModelBrownConrady"},
                "Location": location, "SensorWidth": width, "SensorHeight": height}
    depth = [0.5012, 0.5051, 0.4921, 0.4919, 0.3, -0.1, 0.01, 0.6, -0.05, 0.002, 0, 0, 1e-4, -2e-4]
    colour = [0.4995, 0.5012, 0.4711, 0.6281, 0.5, -2.6, 1.5, 0.4, -2.4, 1.4, 0, 0, 6e-4, -3e-4]
    return {"CalibrationInformation": {"Cameras": [
        camera("CALIBRATION_CameraLocationD0", 1024, 1024, depth),
        camera("CALIBRATION_CameraLocationPV0", 4096, 3072, colour),
    ]}}


def test_recorder_style_mkv_with_raw_calibration(tmp_path: Path) -> None:
    rgb = np.broadcast_to(make_source(2, 720 // 8, 1280 // 8, streams=("rgb",))._arrays["rgb"]
                          .repeat(8, axis=1).repeat(8, axis=2), (2, 720, 1280, 3)).copy()
    depth = make_source(2, 288, 320, streams=("depth",))._arrays["depth"]
    raw = _raw_k4a_calibration()
    path = _recorder_style_mkv(tmp_path / "k4a.mkv", rgb, depth, color="MJPG", calibration=raw)
    assert guess_reader(path).name == "azure_kinect"
    with open_source(path) as src:
        assert {s: i.num_frames for s, i in src.streams.items()} == {"rgb": 2, "ir": 2, "depth": 2}
        assert src.attrs["tags"]["K4A_DEVICE_SERIAL_NUMBER"] == "000123456789"
        cal = src.calibration
        assert cal["is_default"] is False and cal["device"] == "azure_kinect"
        d, c = raw["CalibrationInformation"]["Cameras"][0]["Intrinsics"]["ModelParameters"], \
            raw["CalibrationInformation"]["Cameras"][1]["Intrinsics"]["ModelParameters"]
        # NFOV 2x2 binned: 512x512 binned sensor, crop (96, 90); 720p colour: 1280x960, crop (0, 120)
        assert cal["depth"]["fx"] == pytest.approx(d[2] * 512) and cal["depth"]["cx"] == pytest.approx(
            d[0] * 512 - 96 - 0.5)
        assert cal["rgb"]["fy"] == pytest.approx(c[3] * 960) and cal["rgb"]["cy"] == pytest.approx(
            c[1] * 960 - 120 - 0.5)
        frames = {s: list(src.iter_frames(s)) for s in src.streams}
    np.testing.assert_array_equal(frames["depth"][1].data, depth[1])
    np.testing.assert_array_equal(frames["ir"][0].data, depth[0] // 2)
    assert np.abs(frames["rgb"][1].data.astype(int) - rgb[1]).mean() < 3
    assert frames["depth"][1].pts_seconds == pytest.approx(1.25 + 1 / FPS, abs=1e-6)


def test_recorder_style_nv12_colour(tmp_path: Path) -> None:
    source = make_source(3, streams=("rgb", "depth"), calibration=False)
    path = _recorder_style_mkv(tmp_path / "nv12.mkv", source._arrays["rgb"], source._arrays["depth"],
                               color="NV12", calibration=None)
    frames = drain(path, "azure_kinect")
    got = np.stack([f.data for f in frames["rgb"]])
    assert got.shape == source._arrays["rgb"].shape
    assert np.abs(got.astype(int) - source._arrays["rgb"]).mean() < 4
    with open_source(path) as src:
        assert src.calibration["is_default"] is True
