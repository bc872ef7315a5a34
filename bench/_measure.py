"""Timing helpers, the MP4 baseline (PyAV seek + decode), tables and machine facts for the benches."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np


def time_calls(fn: Callable[[int], Any], args: Sequence[int], warmup: int = 1) -> np.ndarray:
    """Seconds per ``fn(a)`` for each ``a`` in ``args`` (after ``warmup`` untimed calls on ``args[0]``)."""
    for _ in range(warmup):
        fn(int(args[0]))
    out = np.empty(len(args))
    for k, a in enumerate(args):
        t0 = time.perf_counter()
        fn(int(a))
        out[k] = time.perf_counter() - t0
    return out


def p50_p95_ms(seconds: np.ndarray) -> tuple[float, float]:
    p50, p95 = np.percentile(seconds, [50, 95])
    return float(p50) * 1e3, float(p95) * 1e3


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class Mp4Frames:
    """Frames of a one-track MP4 the way a PyAV user gets them: seek to the frame's pts, decode up to it.

    The container stays open between calls (like an open store). PyAV's default decoder
    threading is kept. The pts of every frame comes from one demux pass at open time
    (not timed), so a seek lands exactly and ``frame.pts == pts[i]`` is checked.
    """

    def __init__(self, path: Path, stream: str) -> None:
        import av

        self.path = path
        with av.open(str(path)) as probe:
            vs = probe.streams.video[0]
            self.pts = sorted(p.pts for p in probe.demux(vs) if p.size and p.pts is not None)
        self.container = av.open(str(path))
        self.vs = self.container.streams.video[0]
        self.format = "rgb24" if stream == "rgb" else "gray"
        self.keyframe_interval: float | None = None

    def __len__(self) -> int:
        return len(self.pts)

    def _seek(self, index: int) -> Any:
        target = self.pts[index]
        self.container.seek(target, stream=self.vs, backward=True)
        for frame in self.container.decode(self.vs):
            if frame.pts is not None and frame.pts >= target:
                if frame.pts != target:
                    raise RuntimeError(f"{self.path}: seek to frame {index} landed on pts {frame.pts}, not {target}")
                return frame
        raise RuntimeError(f"{self.path}: frame {index} not found after seeking")

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as an array (rgb24 HxWx3 or grey HxW uint8)."""
        return self._seek(index).to_ndarray(format=self.format)

    def clip(self, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start+count-1``: one seek, then sequential decoding."""
        first = self._seek(start)
        out = [first.to_ndarray(format=self.format)]
        if count > 1:
            for frame in self.container.decode(self.vs):
                out.append(frame.to_ndarray(format=self.format))
                if len(out) == count:
                    break
        if len(out) != count:
            raise RuntimeError(f"{self.path}: only {len(out)} frames from {start}")
        return np.stack(out)

    def keyframes(self) -> list[int]:
        """Indices of the keyframes (from a demux pass)."""
        import av

        with av.open(str(self.path)) as probe:
            vs = probe.streams.video[0]
            keys = sorted(p.pts for p in probe.demux(vs) if p.size and p.is_keyframe)
        index = {pts: i for i, pts in enumerate(self.pts)}
        return [index[k] for k in keys if k in index]

    def close(self) -> None:
        self.container.close()


# -- reporting ---------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *row: Any) -> None:
        self.rows.append(list(row))

    def markdown(self) -> str:
        def cell(v: Any) -> str:
            if isinstance(v, float):
                if v != v:
                    return "n/a"
                if abs(v) >= 100:
                    return f"{v:,.0f}"
                if abs(v) >= 10:
                    return f"{v:.1f}"
                return f"{v:.2f}"
            return str(v)

        lines = [f"#### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|"]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"{n}" for n in self.notes]
        return "\n".join(lines) + "\n"


@dataclass
class Target:
    name: str
    measured: str
    target: str
    met: bool

    def row(self) -> list[Any]:
        return [self.name, self.measured, self.target, "met" if self.met else "**missed**"]


def machine() -> dict[str, str]:
    """nproc, CPU model, RAM and library versions."""
    import av
    import numcodecs
    import PIL
    import xarray
    import zarr

    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    ffmpeg = ".".join(str(v) for v in av.library_versions.get("libavcodec", ()))
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "ram": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": (
            f"numpy {np.__version__}, zarr {zarr.__version__}, numcodecs {numcodecs.__version__}, "
            f"xarray {xarray.__version__}, PyAV {av.__version__} (libavcodec {ffmpeg}), Pillow {PIL.__version__}"
        ),
    }


class LeanFrameReader:
    """What-if: one ir/depth frame read straight from a shard file, bypassing zarr's async machinery.

    Reads the shard index (``n x (offset, length)`` little-endian uint64 + crc32c, at the
    end of the shard), then the one chunk, decodes it with numcodecs' Blosc and, when the
    array uses it, ``Pred2DCodec.decode_array``. Only for arrays with 1 frame per chunk,
    sharded, codecs ``[deepepil.pred2d]? bytes blosc`` (what the default layout writes).
    """

    def __init__(self, array_path: Path) -> None:
        import json

        meta = json.loads((array_path / "zarr.json").read_text())
        sharding = meta["codecs"][0]
        if sharding["name"] != "sharding_indexed" or sharding["configuration"]["chunk_shape"][0] != 1:
            raise ValueError(f"{array_path}: not 1-frame chunks in shards")
        inner = [c["name"] for c in sharding["configuration"]["codecs"]]
        self.pred2d = "deepepil.pred2d" in inner
        self.shape = tuple(meta["shape"])
        self.per_shard = meta["chunk_grid"]["configuration"]["chunk_shape"][0]
        self.frame_shape = self.shape[1:]
        self.path = array_path
        self.index_bytes = 16 * self.per_shard + 4

    def frame(self, index: int) -> np.ndarray:
        import numcodecs.blosc

        from deepepil.recordings.codecs import Pred2DCodec

        shard, inner = divmod(index, self.per_shard)
        key = "/".join(["c", str(shard)] + ["0"] * len(self.frame_shape))
        with open(self.path / key, "rb") as f:
            f.seek(-self.index_bytes, os.SEEK_END)
            table = np.frombuffer(f.read(self.index_bytes - 4), dtype="<u8").reshape(-1, 2)
            offset, length = (int(v) for v in table[inner])
            f.seek(offset)
            data = f.read(length)
        out = np.frombuffer(numcodecs.blosc.decompress(data), dtype="<u2").reshape(1, *self.frame_shape)
        if self.pred2d:
            out = Pred2DCodec.decode_array(out)
        return out[0]


def _cpu_sample() -> Optional[tuple[int, int]]:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    except (OSError, ValueError, IndexError):
        return None
    return fields[3] + fields[4], sum(fields)


class Busy:
    """Seconds a block took and the share of the machine's CPU in use meanwhile (everyone's; NaN if unknown)."""

    def __enter__(self) -> "Busy":
        self.sample = _cpu_sample()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        end = _cpu_sample()
        self.share = float("nan")
        if self.sample is not None and end is not None and end[1] > self.sample[1]:
            self.share = 1.0 - (end[0] - self.sample[0]) / (end[1] - self.sample[1])


def write_report(markdown: str, out: Path) -> None:
    """Print a benchmark's markdown and write it to ``out`` (folders made)."""
    print(markdown)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    print(f"written to {out}")
