"""Recordings: reader plugins, ingest into Zarr, lazy xarray access, frame encoding."""

from __future__ import annotations

__all__ = ["encode_frame", "open_recording", "ingest", "verify"]


def __getattr__(name: str):
    if name == "encode_frame":
        from deepepil.recordings.encoding import encode_frame
        return encode_frame
    if name in ("open_recording", "verify"):
        from deepepil.recordings import store
        return getattr(store, name)
    if name == "ingest":
        from deepepil.recordings.ingest import ingest
        return ingest
    raise AttributeError(f"module 'deepepil.recordings' has no attribute {name!r}")
