"""A small streaming Matroska (EBML) writer, enough for Azure Kinect-style recordings.

FFmpeg's matroska muxer cannot write the Azure Kinect layout (``V_MS/VFW/FOURCC`` tracks
with the ``b16g`` FOURCC), so :func:`~deepepil.recordings.readers.azure_kinect.write_azure_kinect_mkv`
writes the file itself with :class:`MatroskaWriter`: EBML header, a Segment with SeekHead,
Info, Tracks, Attachments and Tags (patched at the end into space reserved up front, so a
truncated file still says how many frames it should hold), Clusters of SimpleBlocks, and
Cues so players can seek. Element IDs follow the Matroska specification (RFC 9559).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

__all__ = ["MatroskaWriter", "TrackSpec", "bitmap_info_header"]

# Element IDs (with their length marker bits, as they appear in the file).
EBML = 0x1A45DFA3
EBML_VERSION, EBML_READ_VERSION = 0x4286, 0x42F7
EBML_MAX_ID_LENGTH, EBML_MAX_SIZE_LENGTH = 0x42F2, 0x42F3
DOC_TYPE, DOC_TYPE_VERSION, DOC_TYPE_READ_VERSION = 0x4282, 0x4287, 0x4285
SEGMENT = 0x18538067
SEEK_HEAD, SEEK, SEEK_ID, SEEK_POSITION = 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMESTAMP_SCALE, DURATION = 0x1549A966, 0x2AD7B1, 0x4489
MUXING_APP, WRITING_APP, TITLE = 0x4D80, 0x5741, 0x7BA9
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_UID, TRACK_TYPE = 0x1654AE6B, 0xAE, 0xD7, 0x73C5, 0x83
FLAG_LACING, NAME, CODEC_ID, CODEC_PRIVATE, DEFAULT_DURATION = 0x9C, 0x536E, 0x86, 0x63A2, 0x23E383
VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT = 0xE0, 0xB0, 0xBA
ATTACHMENTS, ATTACHED_FILE = 0x1941A469, 0x61A7
FILE_NAME, FILE_MIME_TYPE, FILE_DATA, FILE_UID = 0x466E, 0x4660, 0x465C, 0x46AE
TAGS, TAG, TARGETS, TARGET_TYPE_VALUE, TAG_TRACK_UID, TAG_ATTACHMENT_UID = (
    0x1254C367, 0x7373, 0x63C0, 0x68CA, 0x63C5, 0x63C6,
)
SIMPLE_TAG, TAG_NAME, TAG_STRING = 0x67C8, 0x45A3, 0x4487
CLUSTER, CLUSTER_TIMESTAMP, SIMPLE_BLOCK = 0x1F43B675, 0xE7, 0xA3
CUES, CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS = 0x1C53BB6B, 0xBB, 0xB3, 0xB7
CUE_TRACK, CUE_CLUSTER_POSITION, CUE_RELATIVE_POSITION = 0xF7, 0xF1, 0xF0
VOID = 0xEC

_TRACK_TYPE_VIDEO = 1
_SEEK_HEAD_RESERVE = 160
_CLUSTER_SPAN = 30_000  # ticks; block offsets are int16, keep clusters well inside that


def _id_bytes(element_id: int) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")


def encode_size(size: int, length: int | None = None) -> bytes:
    """EBML variable-size integer for ``size`` (``length`` bytes, or the fewest that fit)."""
    if length is None:
        length = 1
        while size > (1 << (7 * length)) - 2:  # all-ones means "unknown size"
            length += 1
    if length > 8 or size > (1 << (7 * length)) - 2:
        raise ValueError(f"size {size} does not fit in {length} EBML bytes")
    return ((1 << (7 * length)) | size).to_bytes(length, "big")


def element(element_id: int, payload: bytes) -> bytes:
    return _id_bytes(element_id) + encode_size(len(payload)) + payload


def uint(element_id: int, value: int) -> bytes:
    return element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def float64(element_id: int, value: float) -> bytes:
    return element(element_id, struct.pack(">d", value))


def string(element_id: int, value: str) -> bytes:
    return element(element_id, value.encode("utf-8"))


def master(element_id: int, *children: bytes) -> bytes:
    return element(element_id, b"".join(children))


def void(total: int) -> bytes:
    """A Void element exactly ``total`` bytes long (``total`` >= 2)."""
    if total < 2:
        raise ValueError("a Void element needs at least 2 bytes")
    if total - 2 <= 126:
        return bytes([VOID]) + encode_size(total - 2) + bytes(total - 2)
    return bytes([VOID]) + encode_size(total - 9, 8) + bytes(total - 9)


def bitmap_info_header(width: int, height: int, fourcc: bytes, bit_count: int) -> bytes:
    """The 40-byte BITMAPINFOHEADER that ``V_MS/VFW/FOURCC`` tracks carry as CodecPrivate."""
    image_size = width * height * bit_count // 8
    return struct.pack("<IiiHH4sIiiII", 40, width, height, 1, bit_count, fourcc, image_size, 0, 0, 0, 0)


@dataclass
class TrackSpec:
    """One video track to write."""

    number: int
    uid: int
    name: str
    codec_id: str
    width: int
    height: int
    default_duration_ns: int
    codec_private: bytes = b""
    tags: dict[str, str] = field(default_factory=dict)


class MatroskaWriter:
    """Write a Matroska file block by block, never holding more than one cluster.

    Parameters
    ----------
    file : binary file
        Seekable, opened for writing.
    tracks : sequence of TrackSpec
    attachments : sequence of (name, mime type, data)
    global_tags : dict
        Tags targeting the whole segment.
    timestamp_scale_ns : int
        Nanoseconds per tick (1000: microsecond timestamps, like the Azure Kinect recorder).
    tags_reserve : int
        Bytes reserved before the clusters for the tags written at :meth:`close`.
    frame_count_tags : bool
        Add a ``NUMBER_OF_FRAMES`` tag per track (the Azure Kinect recorder does not).
    """

    def __init__(
        self,
        file: BinaryIO,
        tracks: Sequence[TrackSpec],
        *,
        attachments: Sequence[tuple[str, str, bytes]] = (),
        global_tags: dict[str, str] | None = None,
        title: str = "",
        timestamp_scale_ns: int = 1000,
        tags_reserve: int = 4096,
        frame_count_tags: bool = True,
    ) -> None:
        self._f = file
        self._frame_count_tags = frame_count_tags
        self._tracks = {t.number: t for t in tracks}
        self._global_tags = dict(global_tags or {})
        self._attachment_uids = {name: 0x5EED0000 + i for i, (name, _, _) in enumerate(attachments)}
        self._scale = timestamp_scale_ns
        self._counts = {t.number: 0 for t in tracks}
        self._cues: list[tuple[int, int, int, int]] = []  # (ticks, track, cluster_pos, relative_pos)
        self._cluster_ticks: int | None = None
        self._cluster = io.BytesIO()
        self._cluster_pos = 0
        self._max_ticks = 0
        self._positions: dict[int, int] = {}

        f = self._f
        f.write(master(
            EBML, uint(EBML_VERSION, 1), uint(EBML_READ_VERSION, 1), uint(EBML_MAX_ID_LENGTH, 4),
            uint(EBML_MAX_SIZE_LENGTH, 8), string(DOC_TYPE, "matroska"), uint(DOC_TYPE_VERSION, 4),
            uint(DOC_TYPE_READ_VERSION, 2),
        ))
        f.write(_id_bytes(SEGMENT))
        self._segment_size_at = f.tell()
        f.write(encode_size(0, 8))  # patched at close
        self._segment_start = f.tell()
        f.write(void(_SEEK_HEAD_RESERVE))  # SeekHead, patched at close

        self._positions[INFO] = f.tell() - self._segment_start
        info_children = uint(TIMESTAMP_SCALE, timestamp_scale_ns) + string(MUXING_APP, "deepepil") + string(
            WRITING_APP, "deepepil"
        )
        if title:
            info_children += string(TITLE, title)
        info_head = _id_bytes(INFO) + encode_size(len(info_children) + 11)
        f.write(info_head + info_children)
        self._duration_at = f.tell() + 3  # after the 2-byte ID and 1-byte size
        f.write(float64(DURATION, 0.0))

        self._positions[TRACKS] = f.tell() - self._segment_start
        f.write(master(TRACKS, *(self._track_entry(t) for t in tracks)))
        if attachments:
            self._positions[ATTACHMENTS] = f.tell() - self._segment_start
            f.write(master(ATTACHMENTS, *(
                master(ATTACHED_FILE, string(FILE_NAME, name), string(FILE_MIME_TYPE, mime),
                       element(FILE_DATA, data), uint(FILE_UID, self._attachment_uids[name]))
                for name, mime, data in attachments
            )))
        self._tags_at = f.tell()
        self._tags_reserve = tags_reserve
        f.write(void(tags_reserve))

    @staticmethod
    def _track_entry(t: TrackSpec) -> bytes:
        children = [
            uint(TRACK_NUMBER, t.number), uint(TRACK_UID, t.uid), uint(TRACK_TYPE, _TRACK_TYPE_VIDEO),
            uint(FLAG_LACING, 0), string(NAME, t.name), string(CODEC_ID, t.codec_id),
        ]
        if t.codec_private:
            children.append(element(CODEC_PRIVATE, t.codec_private))
        children.append(uint(DEFAULT_DURATION, t.default_duration_ns))
        children.append(master(VIDEO, uint(PIXEL_WIDTH, t.width), uint(PIXEL_HEIGHT, t.height)))
        return master(TRACK_ENTRY, *children)

    def write_block(self, track_number: int, time_seconds: float, data: bytes) -> None:
        """Append one frame (a keyframe) of ``track_number`` at ``time_seconds``."""
        if time_seconds < 0:
            raise ValueError(f"Matroska timestamps must be >= 0, got {time_seconds}")
        ticks = round(time_seconds * 1e9 / self._scale)
        if self._cluster_ticks is None or not 0 <= ticks - self._cluster_ticks <= _CLUSTER_SPAN:
            self._flush_cluster()
            self._cluster_ticks = ticks
            self._cluster_pos = self._f.tell() - self._segment_start
            self._cluster.write(uint(CLUSTER_TIMESTAMP, ticks))
        header = encode_size(track_number) + struct.pack(">hB", ticks - self._cluster_ticks, 0x80)
        self._cues.append((ticks, track_number, self._cluster_pos, self._cluster.tell()))
        self._cluster.write(_id_bytes(SIMPLE_BLOCK) + encode_size(len(header) + len(data)))
        self._cluster.write(header)
        self._cluster.write(data)
        self._counts[track_number] += 1
        frame_ticks = self._tracks[track_number].default_duration_ns / self._scale
        self._max_ticks = max(self._max_ticks, round(ticks + frame_ticks))

    def _flush_cluster(self) -> None:
        if self._cluster_ticks is None:
            return
        payload = self._cluster.getbuffer()
        self._f.write(_id_bytes(CLUSTER) + encode_size(len(payload)))
        self._f.write(payload)
        del payload
        self._cluster = io.BytesIO()
        self._cluster_ticks = None

    def close(self) -> None:
        """Write Cues, then patch SeekHead, Duration, Tags and the Segment size."""
        self._flush_cluster()
        f = self._f
        self._positions[CUES] = f.tell() - self._segment_start
        by_time: dict[int, list[tuple[int, int, int]]] = {}
        for ticks, track, cluster_pos, rel in self._cues:
            by_time.setdefault(ticks, []).append((track, cluster_pos, rel))
        f.write(master(CUES, *(
            master(CUE_POINT, uint(CUE_TIME, ticks), *(
                master(CUE_TRACK_POSITIONS, uint(CUE_TRACK, track), uint(CUE_CLUSTER_POSITION, cpos),
                       uint(CUE_RELATIVE_POSITION, rel))
                for track, cpos, rel in entries
            ))
            for ticks, entries in sorted(by_time.items())
        )))
        end = f.tell()

        tags = master(TAGS, *self._tag_elements())
        if len(tags) > self._tags_reserve - 2:
            raise ValueError(f"tags need {len(tags)} bytes, only {self._tags_reserve} reserved")
        self._positions[TAGS] = self._tags_at - self._segment_start
        f.seek(self._tags_at)
        f.write(tags + void(self._tags_reserve - len(tags)))

        seek_head = master(SEEK_HEAD, *(
            master(SEEK, element(SEEK_ID, _id_bytes(eid)), uint(SEEK_POSITION, pos))
            for eid, pos in self._positions.items()
        ))
        f.seek(self._segment_start)
        f.write(seek_head + void(_SEEK_HEAD_RESERVE - len(seek_head)))
        f.seek(self._duration_at)
        f.write(struct.pack(">d", float(self._max_ticks)))
        f.seek(self._segment_size_at)
        f.write(encode_size(end - self._segment_start, 8))
        f.seek(end)
        f.flush()

    def _tag_elements(self) -> list[bytes]:
        tags = []
        for number, track in self._tracks.items():
            simple = dict(track.tags)
            if self._frame_count_tags:
                simple["NUMBER_OF_FRAMES"] = str(self._counts[number])
            if not simple:
                continue
            tags.append(master(
                TAG, master(TARGETS, uint(TARGET_TYPE_VALUE, 50), uint(TAG_TRACK_UID, track.uid)),
                *(master(SIMPLE_TAG, string(TAG_NAME, k), string(TAG_STRING, v)) for k, v in simple.items()),
            ))
        if self._global_tags:
            tags.append(master(
                TAG, master(TARGETS, uint(TARGET_TYPE_VALUE, 50)),
                *(master(SIMPLE_TAG, string(TAG_NAME, k), string(TAG_STRING, v))
                  for k, v in self._global_tags.items()),
            ))
        return tags

    @property
    def attachment_uids(self) -> dict[str, int]:
        return dict(self._attachment_uids)


def sniff(path: str | os.PathLike, nbytes: int = 65536) -> bytes:
    """The first ``nbytes`` of ``path`` (empty when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(nbytes)
    except OSError:
        return b""
