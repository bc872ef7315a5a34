"""Azure Kinect recorder MKV files, and :func:`write_azure_kinect_mkv` to make them.

The recorder's layout: Matroska with video tracks titled ``COLOR``, ``DEPTH`` and ``IR``.
Depth and IR are ``V_MS/VFW/FOURCC`` tracks whose BITMAPINFOHEADER says ``b16g``
(16-bit grey, big endian, one raw frame per block); colour is MJPEG (``V_MJPEG`` or the
``MJPG`` FOURCC), NV12, YUY2 or BGRA. The camera calibration is the attachment
``calibration.json``. Timestamps are in microseconds.

Reading demuxes with PyAV and decodes ``b16g`` blocks with numpy and JPEG with Pillow.
Writing uses our own small Matroska writer (:mod:`._matroska`): FFmpeg's muxer cannot
write ``b16g`` tracks.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from deepepil.errors import CorruptSourceError
from deepepil.recordings.readers._common import (
    LazyTimestamps,
    TimestampChecker,
    calibration_or_default,
    check_frame,
    common_fps,
    discard,
    dumps,
    interleave,
    merged_attrs,
    publish,
    refuse_existing,
    snap_fps,
    staging_path,
    validate_source_for_writing,
)
from deepepil.recordings.readers._matroska import MatroskaWriter, TrackSpec, bitmap_info_header, sniff
from deepepil.recordings.readers.base import Reader
from deepepil.recordings.source import Frame, RecordingSource, StreamInfo, frame_shape_for

__all__ = ["AzureKinectReader", "AzureKinectSource", "write_azure_kinect_mkv", "k4a_calibration"]

#: Track titles of the Azure Kinect recorder, and our stream names.
TRACK_STREAMS: dict[str, str] = {"COLOR": "rgb", "DEPTH": "depth", "IR": "ir"}
_STREAM_TRACKS = {stream: title for title, stream in TRACK_STREAMS.items()}
_TRACK_NUMBERS = {"rgb": 1, "depth": 2, "ir": 3}
CALIBRATION_ATTACHMENT = "calibration.json"
ATTRS_ATTACHMENT = "deepepil_attrs.json"
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"


class AzureKinectReader(Reader):
    """Azure Kinect recorder MKV files (b16g depth and IR, MJPEG colour)."""

    name = "azure_kinect"
    description = "Azure Kinect recorder .mkv (COLOR/DEPTH/IR tracks, b16g depth and IR, calibration.json)"
    url = "https://learn.microsoft.com/azure/kinect-dk/record-file-format"

    def guess_can_open(self, path: str | os.PathLike) -> bool:
        try:
            if not (os.path.isfile(path) and Path(path).suffix.lower() == ".mkv"):
                return False
            head = sniff(path)
            return head.startswith(_EBML_MAGIC) and (b"b16g" in head or b"K4A_" in head)
        except (TypeError, ValueError, OSError):
            return False

    def open(self, path: str | os.PathLike) -> AzureKinectSource:
        return AzureKinectSource(os.fspath(path), self.name)


def _open_container(path: str) -> Any:
    try:
        return av.open(path)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise CorruptSourceError(f"cannot be opened as Matroska ({exc}); truncated or corrupt", path=path) from None


def _tag_count(metadata: dict[str, str]) -> int | None:
    for key, value in metadata.items():
        if key.upper().split("-")[0] == "NUMBER_OF_FRAMES":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class AzureKinectSource(RecordingSource):
    """An Azure Kinect MKV opened lazily: metadata at open, frames decoded while iterating."""

    def __init__(self, path: str, reader_name: str = "azure_kinect") -> None:
        self.path = path
        container = _open_container(path)
        try:
            self._tracks: dict[str, tuple[int, str, str]] = {}  # stream -> (index, decode kind, pix_fmt)
            infos: dict[str, StreamInfo] = {}
            for vs in container.streams.video:
                stream = TRACK_STREAMS.get(str(vs.metadata.get("title", "")).strip().upper())
                if stream is None or stream in infos:
                    continue
                infos[stream] = self._stream_info(vs, stream)
            if not infos:
                raise CorruptSourceError(
                    "has no video track titled COLOR, DEPTH or IR; not an Azure Kinect recording"
                    " (open it with reader='video')", path=path,
                )
            attachments = {a.name: bytes(a.data) for a in container.streams.attachments}
            tags = {k: v for k, v in container.metadata.items() if k.upper() not in ("ENCODER",)}
            muxer = container.metadata.get("encoder", "")
        finally:
            container.close()

        missing = [s for s, info in infos.items() if info.num_frames is None]
        if missing:  # the recorder does not store counts: count blocks, without decoding
            counts = {s: len(t) for s, t in self._packet_times(missing).items()}
            for s in missing:
                infos[s] = StreamInfo(s, infos[s].frame_shape, infos[s].dtype, counts[s], infos[s].fps)
        self.streams = {s: infos[s] for s in ("rgb", "ir", "depth") if s in infos}
        self.calibration = _calibration(attachments, self.streams, path)
        stored: Any = {}
        if ATTRS_ATTACHMENT in attachments:
            try:
                stored = json.loads(attachments[ATTRS_ATTACHMENT])
            except ValueError:
                stored = None
            if not isinstance(stored, dict):
                raise CorruptSourceError(f"attachment {ATTRS_ATTACHMENT} is not a JSON object", path=path)
        extra: dict[str, Any] = {"muxing_app": muxer}
        if tags:
            extra["tags"] = tags
        self.attrs = merged_attrs(reader_name, stored, **extra)
        self.timestamps_seconds = LazyTimestamps(self.streams, lambda s: self._packet_times([s])[s])

    def _stream_info(self, vs: Any, stream: str) -> StreamInfo:
        pix_fmt = vs.format.name if vs.format is not None else ""
        codec = vs.codec_context.name
        if stream == "rgb":
            kind = "jpeg" if codec == "mjpeg" else "pyav"
        elif pix_fmt in ("gray16be", "gray16le") or vs.codec_context.codec_tag == "b16g":
            kind = "<u2" if pix_fmt == "gray16le" else ">u2"
        else:
            raise CorruptSourceError(
                f"{_STREAM_TRACKS[stream]} track is {codec}/{pix_fmt}; expected b16g 16-bit grey", path=self.path
            )
        self._tracks[stream] = (vs.index, kind, pix_fmt)
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate  # DefaultDuration
        if not rate or vs.width <= 0 or vs.height <= 0:
            raise CorruptSourceError(f"{_STREAM_TRACKS[stream]} track has no frame size or rate", path=self.path)
        return StreamInfo(
            stream, frame_shape_for(stream, vs.height, vs.width), "uint8" if stream == "rgb" else "uint16",
            _tag_count(vs.metadata), snap_fps(float(rate)),
        )

    def _packet_times(self, streams: list[str]) -> dict[str, list[float]]:
        by_index = {self._tracks[s][0]: s for s in streams}
        times: dict[str, list[float]] = {s: [] for s in streams}
        container = _open_container(self.path)
        try:
            for packet in container.demux([container.streams[i] for i in by_index]):
                if packet.size and packet.pts is not None:
                    times[by_index[packet.stream.index]].append(float(packet.pts * packet.time_base))
        except av.FFmpegError as exc:
            raise CorruptSourceError(f"cannot read blocks: {exc}", path=self.path) from None
        finally:
            container.close()
        return times

    def iter_frames(self, stream: str) -> Iterator[Frame]:
        info = self.streams[stream]
        index, kind, pix_fmt = self._tracks[stream]
        container = _open_container(self.path)
        checker = TimestampChecker(self.path, stream, info.fps)
        i = 0
        try:
            vs = container.streams[index]
            try:
                for packet in container.demux(vs):
                    if not packet.size:
                        continue
                    data = self._decode(packet, vs, kind, info, i)
                    check_frame(data, info, self.path, i)
                    t = float(packet.pts * packet.time_base) if packet.pts is not None else i / info.fps
                    checker.check(i, t)
                    yield Frame(i, t, data)
                    i += 1
            except av.FFmpegError as exc:
                raise CorruptSourceError(f"cannot read {stream} block: {exc}", path=self.path, frame_index=i) from None
        finally:
            container.close()
        if info.num_frames is not None and i != info.num_frames:
            raise CorruptSourceError(
                f"the file promises {info.num_frames} {stream} frames but {i} could be read"
                + ("; it is truncated or damaged" if i < info.num_frames else ""),
                path=self.path, frame_index=min(i, info.num_frames),
            )

    def _decode(self, packet: Any, vs: Any, kind: str, info: StreamInfo, i: int) -> np.ndarray:
        if kind in ("<u2", ">u2"):
            height, width = info.frame_shape
            if packet.size != height * width * 2:
                raise CorruptSourceError(
                    f"{info.name} block holds {packet.size} bytes; a {width}x{height} 16-bit frame needs "
                    f"{height * width * 2}", path=self.path, frame_index=i,
                )
            return np.frombuffer(packet, dtype=kind).reshape(height, width).astype("uint16")
        if kind == "jpeg":
            return decode_jpeg(bytes(packet), self.path, i)
        try:
            frames = vs.codec_context.decode(packet)
        except av.FFmpegError as exc:
            raise CorruptSourceError(f"cannot decode colour frame: {exc}", path=self.path, frame_index=i) from None
        if not frames:
            raise CorruptSourceError("colour block decoded to no frame", path=self.path, frame_index=i)
        return frames[0].to_ndarray(format="rgb24")


def decode_jpeg(data: bytes, path: str, index: int) -> np.ndarray:
    """Decode one JPEG (MJPEG frame) to RGB uint8; corrupt or truncated data raises."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.array(img if img.mode == "RGB" else img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        if "truncated" in str(exc).lower():
            raise CorruptSourceError(f"JPEG frame is truncated: {exc}", path=path, frame_index=index) from None
        pillow_error = exc
    # MJPEG from cameras may leave out the Huffman tables, which FFmpeg supplies.
    try:
        frames = av.CodecContext.create("mjpeg", "r").decode(av.Packet(data))
        if frames:
            return frames[0].to_ndarray(format="rgb24")
    except av.FFmpegError:
        pass
    raise CorruptSourceError(f"cannot decode JPEG frame: {pillow_error}", path=path, frame_index=index)


def _calibration(attachments: dict[str, bytes], streams: dict[str, StreamInfo], path: str) -> dict[str, Any]:
    raw = attachments.get(CALIBRATION_ATTACHMENT)
    if raw is None:
        return calibration_or_default(None, streams)
    try:
        cal = json.loads(raw.rstrip(b"\0"))
    except ValueError:
        raise CorruptSourceError(f"attachment {CALIBRATION_ATTACHMENT} is not JSON", path=path) from None
    if isinstance(cal, dict) and "CalibrationInformation" in cal:
        return k4a_calibration(cal, streams)
    if not isinstance(cal, dict):
        raise CorruptSourceError(f"attachment {CALIBRATION_ATTACHMENT} is not a JSON object", path=path)
    return cal


#: Azure Kinect sensor modes: output size -> (binned calibration resolution, crop offset).
_K4A_DEPTH_MODES = {
    (320, 288): ((512, 512), (96, 90)), (640, 576): ((1024, 1024), (192, 180)),
    (512, 512): ((512, 512), (0, 0)), (1024, 1024): ((1024, 1024), (0, 0)),
}
_K4A_COLOR_MODES = {
    (1280, 720): ((1280, 960), (0, 120)), (1920, 1080): ((1920, 1440), (0, 180)),
    (2560, 1440): ((2560, 1920), (0, 240)), (2048, 1536): ((2048, 1536), (0, 0)),
    (3840, 2160): ((3840, 2880), (0, 360)), (4096, 3072): ((4096, 3072), (0, 0)),
}


def k4a_calibration(raw: dict[str, Any], streams: dict[str, StreamInfo]) -> dict[str, Any]:
    """Our calibration dict from the recorder's raw ``calibration.json``, per sensor mode.

    Intrinsics in the raw file are unitized and corner-based; they are scaled to the
    recorded mode (binning and crop, as the Azure Kinect SDK does) and moved to the
    pixel-centre convention. Modes not recognised fall back to the default intrinsics.
    """
    cal: dict[str, Any] = {"device": "azure_kinect", "azure_kinect_raw": raw}
    cameras = raw.get("CalibrationInformation", {}).get("Cameras", [])
    fallback = calibration_or_default(None, streams)
    roles = (("depth", ("depth", "ir"), "D0", _K4A_DEPTH_MODES), ("rgb", ("rgb",), "PV0", _K4A_COLOR_MODES))
    for key, names, location, modes in roles:
        info = next((streams[n] for n in names if n in streams), None)
        if info is None:
            continue
        height, width = info.frame_shape[:2]
        camera = next((c for c in cameras if str(c.get("Location", "")).endswith(location)), None)
        if camera is None or (width, height) not in modes:
            cal[key] = fallback[key]
            cal["is_default"] = True
            continue
        p = camera["Intrinsics"]["ModelParameters"]
        (bw, bh), (ox, oy) = modes[(width, height)]
        if key == "rgb" and camera.get("SensorWidth", 0) * 9 // 16 == camera.get("SensorHeight", 0):
            # legacy 16:9 colour calibration: convert to the 4:3 sensor first
            p = [p[0], (p[1] * 2304 + 384) / 3072, p[2], p[3] * 2304 / 3072, *p[4:]]
        cal[key] = {
            "width": width, "height": height,
            "fx": p[2] * bw, "fy": p[3] * bh, "cx": p[0] * bw - ox - 0.5, "cy": p[1] * bh - oy - 0.5,
            "distortion": {n: p[i] for i, n in enumerate(("k1", "k2", "k3", "k4", "k5", "k6"), start=4)}
            | {"p2": p[12], "p1": p[13]},
        }
        if key == "depth":
            cal[key]["depth_unit_mm"] = 1.0
    cal.setdefault("is_default", False)
    return cal


def _track_uid(path: Path, stream: str) -> int:
    return zlib.crc32(f"{path.name}:{stream}".encode()) or 1


def write_azure_kinect_mkv(source: RecordingSource, path: str | os.PathLike, *, jpeg_quality: int = 90) -> Path:
    """Write ``source`` as an Azure Kinect-style MKV, streaming frame by frame.

    Tracks ``COLOR`` (MJPEG, Pillow ``quality=jpeg_quality``), ``DEPTH`` and ``IR`` (``b16g``);
    calibration as the ``calibration.json`` attachment, the source's attrs as
    ``deepepil_attrs.json``; frames interleaved by timestamp, one cluster per time step,
    Cues for seeking and per-track ``NUMBER_OF_FRAMES`` tags.

    Parameters
    ----------
    source : RecordingSource
        Streams among ``rgb``, ``depth``, ``ir``.
    path : path
        Target ``.mkv``; refused when it exists.
    jpeg_quality : int
        1-95.

    Returns
    -------
    pathlib.Path
    """
    if not 1 <= jpeg_quality <= 95:
        raise ValueError(f"jpeg_quality must be in 1..95, got {jpeg_quality}")
    validate_source_for_writing(source)
    path = refuse_existing(path)
    fps = common_fps(source)
    tracks = []
    for stream in ("rgb", "depth", "ir"):
        info = source.streams.get(stream)
        if info is None:
            continue
        height, width = info.frame_shape[:2]
        tracks.append(TrackSpec(
            number=_TRACK_NUMBERS[stream], uid=_track_uid(path, stream), name=_STREAM_TRACKS[stream],
            codec_id="V_MJPEG" if stream == "rgb" else "V_MS/VFW/FOURCC",
            width=width, height=height, default_duration_ns=round(1e9 / info.fps),
            codec_private=b"" if stream == "rgb" else bitmap_info_header(width, height, b"b16g", 16),
        ))
    attachments = [(ATTRS_ATTACHMENT, "application/json", dumps(source.attrs).encode())]
    if source.calibration:
        attachments.insert(0, (CALIBRATION_ATTACHMENT, "application/json", dumps(source.calibration).encode()))
    staged = staging_path(path)
    try:
        with open(staged, "wb") as f:
            writer = MatroskaWriter(f, tracks, attachments=attachments, title="deepepil recording")
            for stream, frame in interleave(source, order=("rgb", "depth", "ir")):
                data = np.asarray(frame.data)
                info = source.streams[stream]
                check_frame(data, info, source.path, frame.index)
                if stream == "rgb":
                    buf = io.BytesIO()
                    Image.fromarray(data).save(buf, format="JPEG", quality=jpeg_quality)
                    payload = buf.getvalue()
                else:
                    payload = data.astype(">u2").tobytes()
                writer.write_block(_TRACK_NUMBERS[stream], frame.pts_seconds, payload)
            writer.close()
    except BaseException:
        discard(staged)
        raise
    return publish(staged, path)
