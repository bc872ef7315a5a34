"""The recording store: one Zarr v3 group per recording, opened lazily as xarray.

Layout of ``NAME.zarr/``::

    zarr.json          group metadata: fps, calibration, provenance (attributes)
    time/              float64 seconds per frame, dimension ``time``
    rgb/ ir/ depth/    one array per stream, dimension ``time`` first, sharded
    _manifest/         a zarr group whose attributes hold the sha256 and size of every
                       file above; written last

A store is written aside as ``.NAME.zarr.partial`` and renamed into place only after
its manifest is written and checked, so a store that exists under its final name is
complete (see :mod:`deepepil.recordings.ingest`).
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from deepepil.errors import IncompleteStoreError, IntegrityError, RecordingNotFoundError
from deepepil.recordings.codecs import JpegCodec, Pred2DCodec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "StoreLayout",
    "DEFAULT_LAYOUT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "open_recording",
    "verify",
    "VerifyReport",
    "write_manifest",
    "read_manifest",
    "manifest_sha256",
    "read_store_attrs",
    "recording_summary",
    "list_recordings",
]

FORMAT_VERSION = 1
#: The manifest is a zarr group (so zarr and xarray see no stray file) holding the
#: checksums in its attributes.
MANIFEST_NAME = "_manifest"
_MANIFEST_FILE = f"{MANIFEST_NAME}/zarr.json"
PARTIAL_SUFFIX = ".partial"

#: Dimension names per stream: ir and depth share the depth camera's pixel grid.
STREAM_DIMS: Mapping[str, tuple[str, ...]] = {
    "rgb": ("time", "rgb_y", "rgb_x", "channel"),
    "ir": ("time", "y", "x"),
    "depth": ("time", "y", "x"),
}

_STREAM_ATTRS: Mapping[str, dict[str, str]] = {
    "rgb": {"long_name": "colour image", "units": "1"},
    "ir": {"long_name": "infrared intensity", "units": "1"},
    "depth": {"long_name": "distance along the optical axis (0 = no reading)", "units": "mm"},
}


@dataclass(frozen=True)
class StoreLayout:
    """How streams are chunked and compressed. Defaults are chosen in ``bench/bench_store.py``.

    Parameters
    ----------
    frames_per_chunk : int
        Frames per inner chunk: the unit one random-frame read decodes.
    frames_per_shard : int
        Frames per shard file: the unit of writing and of sequential clip reads.
    depth_codec : {"zstd", "pred2d-zstd"}
        Lossless codec for ir and depth: blosc-zstd (bitshuffle) on the raw frames, or
        left-neighbour prediction first, which stores 5-10 % smaller but decodes ~4x
        slower (benchmarks.md); the default favours training-loader speed.
    zstd_level : int
        blosc-zstd compression level, 1 to 9.
    rgb_codec : {"jpeg", "zstd"}
        ``"jpeg"`` (lossy, ``rgb_quality``) or lossless blosc-zstd.
    rgb_quality : int
        JPEG quality for rgb, 1 to 100.
    """

    frames_per_chunk: int = 1
    frames_per_shard: int = 32
    depth_codec: Literal["pred2d-zstd", "zstd"] = "zstd"
    zstd_level: int = 5
    rgb_codec: Literal["jpeg", "zstd"] = "jpeg"
    rgb_quality: int = 90

    def __post_init__(self) -> None:
        if self.frames_per_chunk < 1:
            raise ValueError(f"frames_per_chunk must be >= 1, got {self.frames_per_chunk}")
        if self.frames_per_shard < self.frames_per_chunk or self.frames_per_shard % self.frames_per_chunk:
            raise ValueError(
                f"frames_per_shard ({self.frames_per_shard}) must be a multiple of "
                f"frames_per_chunk ({self.frames_per_chunk})"
            )
        if self.depth_codec not in ("pred2d-zstd", "zstd"):
            raise ValueError(f"depth_codec must be 'pred2d-zstd' or 'zstd', got {self.depth_codec!r}")
        if self.rgb_codec not in ("jpeg", "zstd"):
            raise ValueError(f"rgb_codec must be 'jpeg' or 'zstd', got {self.rgb_codec!r}")
        if not 1 <= self.zstd_level <= 9:
            raise ValueError(f"zstd_level must be from 1 to 9, got {self.zstd_level}")
        if not 1 <= self.rgb_quality <= 100:
            raise ValueError(f"rgb_quality must be from 1 to 100, got {self.rgb_quality}")

    def codecs_for(self, stream: str) -> dict[str, Any]:
        """Keyword arguments for :func:`zarr.create_array` for ``stream``."""
        zstd = BloscCodec(cname="zstd", clevel=self.zstd_level, shuffle="bitshuffle")
        if stream == "rgb":
            if self.rgb_codec == "jpeg":
                return {"serializer": JpegCodec(quality=self.rgb_quality), "compressors": None}
            return {"compressors": BloscCodec(cname="zstd", clevel=self.zstd_level, shuffle="shuffle")}
        if self.depth_codec == "pred2d-zstd":
            return {"filters": [Pred2DCodec()], "compressors": zstd}
        return {"compressors": zstd}

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description stored in the group attributes."""
        return {
            "frames_per_chunk": self.frames_per_chunk,
            "frames_per_shard": self.frames_per_shard,
            "depth_codec": self.depth_codec,
            "zstd_level": self.zstd_level,
            "rgb_codec": self.rgb_codec,
            "rgb_quality": self.rgb_quality if self.rgb_codec == "jpeg" else None,
        }


DEFAULT_LAYOUT = StoreLayout()


def create_stream_array(
    group: zarr.Group, stream: str, num_frames: int, frame_shape: tuple[int, ...], dtype: str,
    layout: StoreLayout = DEFAULT_LAYOUT,
) -> zarr.Array:
    """Create the sharded array for one stream inside ``group``."""
    dims = list(STREAM_DIMS[stream])
    array = group.create_array(
        stream,
        shape=(num_frames, *frame_shape),
        chunks=(layout.frames_per_chunk, *frame_shape),
        shards=(layout.frames_per_shard, *frame_shape),
        dtype=dtype,
        fill_value=0,
        dimension_names=dims,
        attributes=dict(_STREAM_ATTRS[stream]),
        # writing every chunk skips zarr's per-chunk "is it all fill value?" comparison,
        # which runs on its single event-loop thread: ingest 5.4x -> 6.6x real time (bench)
        config={"write_empty_chunks": True},
        **layout.codecs_for(stream),
    )
    return array


def create_time_array(group: zarr.Group, num_frames: int) -> zarr.Array:
    """Create the ``time`` coordinate array (seconds since the first frame)."""
    return group.create_array(
        "time", shape=(num_frames,), chunks=(max(num_frames, 1),), dtype="float64",
        dimension_names=["time"], fill_value=0.0,
        attributes={"units": "s", "long_name": "time since the first frame"},
    )


# -- manifest -------------------------------------------------------------------------


def _store_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.relative_to(root).as_posix() == _MANIFEST_FILE:
                continue
            files.append(path)
    return files


def _sha256(path: Path, block_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Hash every file of the store at ``root`` and write the manifest group; return the manifest."""
    root = Path(root)
    files = {
        p.relative_to(root).as_posix(): {"size_bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in _store_files(root)
    }
    manifest = {
        "format": "deepepil.manifest", "format_version": FORMAT_VERSION, "algorithm": "sha256",
        "total_bytes": sum(f["size_bytes"] for f in files.values()), "files": files,
    }
    node = {"zarr_format": 3, "node_type": "group", "attributes": {"deepepil_manifest": manifest}}
    (root / MANIFEST_NAME).mkdir(exist_ok=True)
    tmp = root / (_MANIFEST_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(node, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / _MANIFEST_FILE)
    return manifest


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Return the manifest written by :func:`write_manifest`."""
    node = json.loads((Path(root) / _MANIFEST_FILE).read_text())
    return node["attributes"]["deepepil_manifest"]


def manifest_sha256(root: str | os.PathLike) -> str:
    """The sha256 of the store's manifest file: one checksum that covers every file of the store."""
    return _sha256(_check_store_path(root) / _MANIFEST_FILE)


def read_store_attrs(root: str | os.PathLike) -> dict[str, Any]:
    """The group attributes of a published store (name, fps, num_frames, streams, provenance, ...).

    Reads only ``zarr.json``; raises like :func:`open_recording` when the store is missing
    or unpublished.
    """
    path = _check_store_path(root)
    return json.loads((path / "zarr.json").read_text()).get("attributes", {})


@dataclass
class VerifyReport:
    """Result of :func:`verify`: ``ok`` plus one line per problem found."""

    path: str
    checked_files: int = 0
    checked_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = (
            f"{self.path}: OK ({self.checked_files} files, {self.checked_bytes / 1e6:.1f} MB checked)"
            if self.ok
            else f"{self.path}: {len(self.problems)} problem(s)"
        )
        return "\n".join([head, *("  " + p for p in self.problems)])


def _check_store_path(path: str | os.PathLike) -> Path:
    root = Path(path)
    if root.name.endswith(PARTIAL_SUFFIX):
        raise IncompleteStoreError(
            f"{root}: this is an unfinished ingest (it was never published); "
            f"rerun `deepepil ingest` on the source to finish it"
        )
    if not root.exists():
        partial = root.with_name("." + root.name + PARTIAL_SUFFIX)
        if partial.exists():
            raise IncompleteStoreError(
                f"{root}: not published; an ingest left {partial.name}. "
                f"Rerun `deepepil ingest` on the source to finish it"
            )
        raise RecordingNotFoundError(f"{root}: no recording store here")
    if not (root / "zarr.json").exists():
        raise RecordingNotFoundError(f"{root}: not a recording store (no zarr.json)")
    if not (root / _MANIFEST_FILE).exists():
        raise IncompleteStoreError(
            f"{root}: has no checksum manifest ({_MANIFEST_FILE}), so it was never completely written; "
            f"ingest the source again"
        )
    return root


def verify(path: str | os.PathLike, *, decode: bool = False) -> VerifyReport:
    """Check a store against its checksum manifest.

    Parameters
    ----------
    path : path-like
        The ``NAME.zarr`` folder.
    decode : bool
        Also decode every frame of every stream (slow; catches codec-level damage
        that a manifest written after the damage would not).

    Returns
    -------
    VerifyReport
        ``report.ok`` is True when every file matches; ``report.problems`` says what does not.
    """
    root = _check_store_path(path)
    report = VerifyReport(str(root))
    try:
        expected: dict[str, dict[str, Any]] = read_manifest(root)["files"]
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"{_MANIFEST_FILE} is unreadable: {exc}")
        return report
    present = {p.relative_to(root).as_posix(): p for p in _store_files(root)}
    for rel in sorted(set(expected) - set(present)):
        report.problems.append(f"missing file: {rel}")
    for rel in sorted(set(present) - set(expected)):
        report.problems.append(f"unexpected file (not in manifest): {rel}")
    for rel in sorted(set(expected) & set(present)):
        info, p = expected[rel], present[rel]
        size = p.stat().st_size
        report.checked_files += 1
        report.checked_bytes += size
        if size != info["size_bytes"]:
            report.problems.append(f"size differs: {rel} ({size} bytes, manifest says {info['size_bytes']})")
        elif _sha256(p) != info["sha256"]:
            report.problems.append(f"checksum differs: {rel}")
    if decode and report.ok:
        group = zarr.open_group(zarr.storage.LocalStore(root, read_only=True), mode="r")
        for name, array in group.arrays():
            step = max(array.shards[0] if array.shards else array.chunks[0], 1)
            for start in range(0, array.shape[0], step):
                try:
                    array[start : start + step]
                except Exception as exc:  # a decode failure is a finding, not a crash
                    report.problems.append(f"{name}: frames {start}..{start + step - 1} fail to decode: {exc}")
    return report


# -- opening ---------------------------------------------------------------------------


def open_recording(path: str | os.PathLike | int, *, chunks: Any = None, url: str | None = None) -> xr.Dataset:
    """Open a recording store lazily as an :class:`xarray.Dataset`.

    Parameters
    ----------
    path : path-like or int
        The ``NAME.zarr`` folder written by :func:`deepepil.ingest`, or a recording id of
        the catalog (see :func:`deepepil.catalog`), resolved to its storage URI.
    chunks : optional
        ``None`` (default): lazy arrays that read only the chunks an index touches.
        ``{}`` or a dict: dask arrays (see :func:`xarray.open_zarr`).
    url : str, optional
        Label database holding the catalog, when ``path`` is a recording id; default
        ``$DEEPEPIL_DATABASE_URL``, else the SQLite file in the user's data folder.

    Returns
    -------
    xarray.Dataset
        Data variables ``rgb`` ``(time, rgb_y, rgb_x, channel)``, ``ir`` and ``depth``
        ``(time, y, x)`` (those present), coordinate ``time`` in seconds; calibration,
        fps and provenance in ``attrs`` (and ``recording_id`` when opened by id).
        Nothing but metadata is read on open.

    Raises
    ------
    deepepil.errors.NotFoundError
        ``path`` is a recording id that does not exist or that the caller may not see.
    """
    recording_id = None
    if isinstance(path, numbers.Integral) and not isinstance(path, bool):  # numpy ints from a DataFrame too
        from deepepil.labels.catalog import recording_uri

        recording_id = int(path)
        path = recording_uri(recording_id, url=url)
        if path.startswith("file://"):
            from urllib.parse import unquote, urlparse

            path = unquote(urlparse(path).path)
    root = _check_store_path(path)
    ds = xr.open_zarr(
        zarr.storage.LocalStore(root, read_only=True),
        consolidated=False, zarr_format=3, chunks=chunks, mask_and_scale=False,
    )
    ds = ds[[s for s in STREAM_DIMS if s in ds.data_vars]]
    ds.attrs["path"] = str(root)
    if recording_id is not None:
        ds.attrs["recording_id"] = recording_id
    return ds


def recording_summary(ds: xr.Dataset) -> str:
    """Human-readable summary of an opened recording (what ``deepepil info`` prints)."""
    a = ds.attrs
    n = ds.sizes.get("time", 0)
    prov = a.get("provenance", {})
    lines = [
        f"recording   {a.get('name', '?')}",
        f"path        {a.get('path', '?')}",
        f"duration    {a.get('duration_seconds', 0):.2f} s, {n} frames at {a.get('fps', 0):g} fps",
    ]
    for name in ("rgb", "ir", "depth"):
        if name in ds:
            var = ds[name]
            shape = "x".join(str(s) for s in var.shape[1:])
            lines.append(f"stream      {name:<6} {shape} {var.dtype}  {var.attrs.get('units', '')}".rstrip())
    cal = a.get("calibration", {})
    if "depth" in cal:
        d = cal["depth"]
        default = " (documented defaults)" if cal.get("is_default") else ""
        lines.append(
            f"calibration depth fx={d['fx']:.3f} fy={d['fy']:.3f} cx={d['cx']:.3f} cy={d['cy']:.3f}{default}"
        )
    layout = a.get("layout", {})
    if layout:
        lines.append(
            f"layout      {layout.get('frames_per_chunk')} frame(s)/chunk, {layout.get('frames_per_shard')}"
            f" frames/shard, depth/ir {layout.get('depth_codec')}, rgb {layout.get('rgb_codec')}"
            + (f" q{layout['rgb_quality']}" if layout.get("rgb_quality") else "")
        )
    if prov:
        size = prov.get("source_size_bytes")
        digest = prov.get("source_sha256")
        lines.append(
            f"source      {prov.get('source_name')} ({prov.get('source_format')}"
            + (f", {size / 1e6:.1f} MB" if size is not None else "")
            + (f", sha256 {digest[:12]}..." if digest else "")
            + ")"
        )
        lines.append(f"ingested    {prov.get('ingested_at')} by deepepil {prov.get('deepepil_version')}")
    if (Path(a.get("path", "")) / _MANIFEST_FILE).exists():
        total = read_manifest(a["path"]).get("total_bytes", 0)
        raw = sum(int(np.prod(ds[v].shape)) * ds[v].dtype.itemsize for v in ds.data_vars)
        ratio = f", {raw / total:.1f}:1 vs raw" if total else ""
        lines.append(f"size        {total / 1e6:.1f} MB on disk{ratio}")
    return "\n".join(lines)


def list_recordings(store: str | os.PathLike) -> "pd.DataFrame":
    """Table of the published recordings in the folder ``store`` (one row per ``*.zarr``).

    Reads only each store's group metadata. Unfinished ingests (``.partial``) are not listed.
    """
    import pandas as pd

    rows = []
    for path in sorted(Path(store).glob("*.zarr")):
        if not (path / _MANIFEST_FILE).exists():
            continue
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
        prov = attrs.get("provenance", {})
        rows.append(
            {
                "name": attrs.get("name", path.stem),
                "path": str(path),
                "num_frames": attrs.get("num_frames"),
                "duration_seconds": attrs.get("duration_seconds"),
                "fps": attrs.get("fps"),
                "streams": ",".join(attrs.get("streams", [])),
                "source_format": prov.get("source_format"),
                "ingested_at": prov.get("ingested_at"),
            }
        )
    columns = ["name", "path", "num_frames", "duration_seconds", "fps", "streams", "source_format", "ingested_at"]
    return pd.DataFrame(rows, columns=columns)
