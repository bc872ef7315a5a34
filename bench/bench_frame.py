"""The widget's frame path: one random frame, read and encoded for the browser, vs seeking an MP4.

Uses the full-size cached data that ``bench/bench_store.py`` builds in ``.bench-data/``
(a 2-minute recording: the store, and H.264 MP4s of the same content, libx264 GOP 250).
For ir/depth it reads the store written with the default layout (blosc-zstd on raw
frames, 1 frame per chunk, 32 per shard); rgb is JPEG q90 in both stores.

    python bench/bench_frame.py            # after bench/bench_store.py has built the data
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data  # noqa: E402
import deepepil  # noqa: E402
from _measure import Mp4Frames, machine, p50_p95_ms, time_calls  # noqa: E402
from deepepil.recordings import encode_frame  # noqa: E402
from deepepil.recordings.framereader import read_frame  # noqa: E402

DATA = _data.BenchData(_data.DataParams())  # the full-size data bench_store.py caches


def main() -> int:
    if not DATA.store.exists():
        print(f"no store for the default layout in {DATA.root}: run `python bench/bench_store.py` first",
              file=sys.stderr)
        return 1
    stores = {stream: DATA.store for stream in ("ir", "depth", "rgb")}
    print(f"machine: {machine()}")
    print("| stream | read_frame p50 / p95 ms | xarray isel p50 / p95 ms | encode_frame (read + map + JPEG) p50 / p95 ms "
          "| MP4 seek p50 / p95 ms | MP4 / read_frame (p50) | MP4 / encode_frame (p50) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for stream, path in stores.items():
        ds = deepepil.open_recording(path)
        n = ds.sizes["time"]
        indices = np.random.default_rng(0).integers(0, n, 200)
        mp4 = Mp4Frames(DATA.mp4(stream), stream)
        fast = time_calls(lambda i: read_frame(ds, stream, i), indices)
        xr_path = time_calls(lambda i: ds[stream].isel(time=i).values, indices)
        enc = time_calls(lambda i: encode_frame(ds, stream, i), indices)
        seek = time_calls(mp4.frame, indices)
        mp4.close()
        f50, f95 = p50_p95_ms(fast)
        x50, x95 = p50_p95_ms(xr_path)
        e50, e95 = p50_p95_ms(enc)
        s50, s95 = p50_p95_ms(seek)
        print(f"| {stream} | {f50:.2f} / {f95:.2f} | {x50:.2f} / {x95:.2f} | {e50:.2f} / {e95:.2f} | "
              f"{s50:.0f} / {s95:.0f} | {s50 / f50:.0f}x | {s50 / e50:.0f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
