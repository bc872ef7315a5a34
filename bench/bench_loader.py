"""Training-loader and CPU training throughput of deepepil.ml, against decoding clips from MP4.

    python bench/bench_loader.py                        # about 2-3 minutes on 2 cores
    python bench/bench_loader.py --quick                # a smoke run (under a minute)
    python bench/bench_loader.py --out OUT.md     # results go into docs/benchmarks.md

The first run renders a full-size synthetic recording (IR and depth 512x424, 30 fps),
ingests it and encodes its IR frames to H.264 MP4s, cached in ``.bench-data/loader/``.

loader   DataLoader clips/s, 16x112x112 IR clips (15 fps from 30), 2 workers: ClipDataset
         on the store (depth-based patient crop, normalization) vs a Dataset that seeks and
         decodes the same clips in an MP4 with PyAV, as a user holding videos would (8-bit
         IR, GOP 250 as libx264 writes by default, and GOP 32) and just resizes them
train    CPU training throughput (forward + backward + SGD step) per model, clips/s
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data  # noqa: E402
from _measure import Busy, Mp4Frames, Table, machine  # noqa: E402

CACHE = _data.CACHE / "loader"
DATA_VERSION = 1
CLIP_FRAMES, CLIP_FPS, SIZE = 16, 15.0, (112, 112)
TARGET_RATIO = 5.0
say = _data.log


# -- data ----------------------------------------------------------------------------------------


def prepare_store(seconds: float, seed: int = 0, rebuild: bool = False) -> dict[str, Any]:
    """The store and ground truth of a ``seconds`` full-size recording (IR + depth), built once."""
    import shutil

    import deepepil
    from deepepil.synthetic import make_cohort_profiles, make_recording

    root = CACHE / f"full-{seconds:g}s-seed{seed}-v{DATA_VERSION}"
    if rebuild and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    store, truth_path, meta_path = root / "rec.zarr", root / "truth.json", root / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"build_seconds": {}}
    if not store.exists() or not truth_path.exists():
        rec = make_recording(make_cohort_profiles(1, seed=seed)[0], 0, seconds=seconds, size="full", seed=seed)
        if not store.exists():
            say(f"  rendering and ingesting a full-size {seconds:g} s recording (ir + depth; once, about a minute)")
            t0 = time.perf_counter()
            deepepil.ingest(rec, root, name="rec", streams=["ir", "depth"], progress=sys.stderr.isatty())
            meta["build_seconds"]["render_and_ingest"] = round(time.perf_counter() - t0, 1)
            meta_path.write_text(json.dumps(meta, indent=1))
        if not truth_path.exists():
            truth = rec.ground_truth
            truth.pop("joints_m", None)
            truth_path.write_text(json.dumps(truth))
    return {"root": root, "store": store, "truth": json.loads(truth_path.read_text()), "meta": meta,
            "seconds": seconds, "seed": seed}


def prepare(seconds: float, seed: int = 0, rebuild: bool = False) -> dict[str, Any]:
    """Build (once) the store, ground truth and MP4s for a ``seconds`` full-size recording."""
    import deepepil

    data = prepare_store(seconds, seed, rebuild)
    root, store, meta = data["root"], data["store"], data["meta"]
    meta_path = root / "meta.json"
    ds = deepepil.open_recording(store)
    lo, hi = _data.gray8_mapping("ir", ds.attrs.get("display", {}))
    for gop in (250, 32):
        mp4 = root / f"ir-gop{gop}.mp4"
        if not mp4.exists():
            say(f"  encoding {mp4.name} (libx264 8-bit grey, crf {_data.MP4_CRF}, GOP {gop})")
            t0 = time.perf_counter()

            def frames(n: int = ds.sizes["time"]):
                for start in range(0, n, 32):
                    for f in ds["ir"].isel(time=slice(start, start + 32)).values:
                        yield _data.to_gray8(f, lo, hi)

            _data.write_gray_mp4(frames(), mp4, float(ds.attrs["fps"]), gop=gop)
            meta["build_seconds"][f"encode_gop{gop}"] = round(time.perf_counter() - t0, 1)
    meta_path.write_text(json.dumps(meta, indent=1))
    return {**data, "mp4": {gop: root / f"ir-gop{gop}.mp4" for gop in (250, 32)}}


def clip_dataset(data: dict[str, Any]):
    """The ClipDataset of the benchmark: IR clips over the whole recording, targets from the ground truth."""
    import pandas as pd

    from deepepil.ml import ClipDataset

    truth = data["truth"]
    uri = str(data["store"])
    mois = pd.DataFrame([{"storage_uri": uri, "recording_name": "rec", "region": m["region"], "label": m["label"],
                          "laterality": m["laterality"], "start_frame": m["start_frame"],
                          "end_frame": m["end_frame"], "fps": 30.0} for m in truth["mois"]])
    region = mois["region"].value_counts().index[0]
    recordings = pd.DataFrame([{"storage_uri": uri, "name": "rec", "patient_code": truth["patient_code"]}])
    return ClipDataset(mois, recordings, target=f"moi:{region}", streams=("ir",), clip_frames=CLIP_FRAMES,
                       fps=CLIP_FPS, window="recording", stride_frames=8, size=SIZE, crop="patient")


class Mp4ClipDataset:
    """The alternative: the same clips from an MP4, PyAV seek + decode, every second frame, resized to 112x112.

    No crop is searched (that would need depth, which 8-bit H.264 cannot hold): the full
    frame is padded to a square and resized, which costs less than the store's patient crop.
    """

    def __init__(self, path: Path, starts: np.ndarray, span: int, step: int) -> None:
        self.path, self.starts, self.span, self.step = path, starts, span, step
        self._mp4: Any = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.starts)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_mp4": None, "_pid": None}

    def __getitem__(self, i: int):
        import torch
        import torch.nn.functional as F

        if self._mp4 is None or self._pid != os.getpid():
            self._mp4, self._pid = Mp4Frames(self.path, "ir"), os.getpid()
        frames = self._mp4.clip(int(self.starts[i]), self.span)[:: self.step]
        x = torch.from_numpy(frames).to(torch.float32).div_(255.0).unsqueeze(1)  # (T, 1, H, W)
        h, w = x.shape[-2:]
        side = max(h, w)
        x = F.pad(x, ((side - w) // 2, side - w - (side - w) // 2, (side - h) // 2, side - h - (side - h) // 2))
        x = F.interpolate(x, size=SIZE, mode="bilinear", align_corners=False, antialias=True)
        return x.permute(1, 0, 2, 3).contiguous(), torch.tensor(0)


# -- measuring -------------------------------------------------------------------------------------


class OrderSampler:
    """A sampler whose indices can change between epochs (the persistent workers stay up)."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def loader_rates(sources: dict[str, Any], warm: np.ndarray, chunks: list[np.ndarray], workers: int,
                 batch_size: int = 8) -> dict[str, list[dict[str, float]]]:
    """Clips/s of every source over each chunk of clips, the sources taking turns chunk by chunk.

    One DataLoader per source; its workers start (and import) during a warm-up epoch over
    other clips and persist, and each timed epoch starts with empty prefetch queues, so it
    counts the reading and decoding of every clip. Taking turns spreads the load that other
    work puts on a shared machine over all sources.
    """
    import torch

    loaders = {}
    for name, dataset in sources.items():
        sampler = OrderSampler()
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                             persistent_workers=workers > 0)
        sampler.indices = warm.tolist()
        for first, _ in loader:
            assert first.shape[1:] == (1, CLIP_FRAMES, *SIZE), first.shape
        loaders[name] = (loader, sampler)
    out: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
    for k, chunk in enumerate(chunks):
        for name, (loader, sampler) in loaders.items():
            sampler.indices = chunk.tolist()
            clips = 0
            with Busy() as busy:
                for x, _ in loader:
                    clips += len(x)
            out[name].append({"clips": clips, "seconds": busy.seconds, "clips_per_s": clips / busy.seconds,
                              "cpu_busy": busy.share})
            say(f"    round {k + 1}: {name}: {clips / busy.seconds:.2f} clips/s")
    loaders.clear()
    return out


def bench_loader(data: dict[str, Any], n_clips: int, seed: int, rounds: int) -> tuple[list[Table], dict[str, Any]]:
    import torch

    ds = clip_dataset(data)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(ds))
    warm, order = shuffled[:16], shuffled[16:16 + n_clips]  # warm-up clips are never timed
    step = int(round(30.0 / CLIP_FPS))
    span = (CLIP_FRAMES - 1) * step + 1
    starts = ds.index["start_frame"].to_numpy()
    torch.set_num_threads(1)  # DataLoader workers use one thread each; the main process only collects
    store = "store (ClipDataset, patient crop)"
    sources = {store: ds,
               "MP4 GOP 250 (PyAV seek + decode)": Mp4ClipDataset(data["mp4"][250], starts, span, step),
               "MP4 GOP 32 (PyAV seek + decode)": Mp4ClipDataset(data["mp4"][32], starts, span, step)}
    results: dict[str, Any] = {"clips_in_index": len(ds)}
    table = Table(f"DataLoader: {CLIP_FRAMES}x{SIZE[0]}x{SIZE[1]} IR clips ({CLIP_FPS:g} fps from 30), batch 8, "
                  f"{len(order)} clips in random order in {rounds} rounds (without workers: 16 clips, 2 rounds), "
                  "the sources taking turns; median over rounds",
                  ["source", "workers", "clips/s", "ms per clip per worker", "machine CPU busy", "vs store"])
    for workers in (2, 0):
        chunks = np.array_split(order, rounds) if workers else np.array_split(order[:16], 2)
        say(f"  {workers} workers: {len(sources)} sources x {len(chunks)} rounds of {len(chunks[0])} clips")
        rates = loader_rates(sources, warm, chunks, workers)
        store_rates = np.array([r["clips_per_s"] for r in rates[store]])
        for name, runs in rates.items():
            mine = np.array([r["clips_per_s"] for r in runs])
            rate = float(np.median(mine))
            ratio = float(np.median(store_rates / mine))
            busy = float(np.median([r["cpu_busy"] for r in runs]))
            results[f"{name} | {workers}"] = {"clips_per_s": rate, "runs": runs, "store_ratio": ratio}
            table.add(name, workers, rate, 1e3 * max(workers, 1) / rate, f"{100 * busy:.0f} %",
                      "1.00x" if name == store else f"{ratio:.1f}x slower")
    ratio = results["MP4 GOP 250 (PyAV seek + decode) | 2"]["store_ratio"]
    results["ratio_vs_mp4_gop250"] = ratio
    results["ratio_vs_mp4_gop32"] = results["MP4 GOP 32 (PyAV seek + decode) | 2"]["store_ratio"]
    table.notes.append(
        f"Store / MP4 (GOP 250) with 2 workers: **{ratio:.1f}x** (median of the per-round ratios; target >= "
        f"{TARGET_RATIO:g}x: {'met' if ratio >= TARGET_RATIO else 'missed'}); vs GOP 32: "
        f"{results['ratio_vs_mp4_gop32']:.1f}x. The store path also finds the patient in depth and crops; the MP4 "
        "path only resizes.")
    return [table], results


def bench_train(rounds: int, batch: int, width: float, frames: int) -> tuple[list[Table], dict[str, Any]]:
    import torch

    from deepepil.ml import build_model, count_parameters

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    table = Table(f"CPU training throughput: batch {batch} of 1x{frames}x{SIZE[0]}x{SIZE[1]} clips, "
                  f"width {width:g}, SGD, float32, {torch.get_num_threads()} threads; one step per model per round, "
                  f"the models taking turns, median of {rounds} rounds after a warm-up step",
                  ["model", "parameters", "clips/s", "s per step", "machine CPU busy"])
    steps = {}
    for name, options in (("i3d", {}), ("r2plus1d", {}), ("cnn2d", {"head": "gru"})):
        torch.manual_seed(0)
        model = build_model(name, 2, 1, width=width, **options)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(batch, 1, frames, *SIZE)
        y = torch.randint(0, 2, (batch,))

        def step(model=model, opt=opt, x=x, y=y) -> None:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        step()  # warm-up (allocations, kernel choices)
        label = name + (f" ({options['head']} head)" if options else "")
        steps[label] = (step, count_parameters(model), [])
    for _ in range(rounds):
        for label, (step, _, runs) in steps.items():
            with Busy() as busy:
                step()
            runs.append((busy.seconds, busy.share))
    results = {}
    for label, (_, parameters, runs) in steps.items():
        seconds = float(np.median([r[0] for r in runs]))
        rate = batch / seconds
        say(f"  {label}: {rate:.2f} clips/s")
        table.add(label, f"{parameters:,}", rate, seconds, f"{100 * np.median([r[1] for r in runs]):.0f} %")
        results[label] = {"clips_per_s": rate, "parameters": parameters, "step_seconds": [r[0] for r in runs]}
    return [table], results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer clips and steps (under a minute)")
    parser.add_argument("--only", default="loader,train", help="comma-separated sections: loader, train")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of the recording (default 30)")
    parser.add_argument("--n-clips", type=int, default=None, help="clips per loader measurement (default 96)")
    parser.add_argument("--width", type=float, default=0.5, help="model width for the training section")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached data")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown output (default .bench-data/results/bench_loader.md); JSON goes to "
                             ".bench-data/results/")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(sections) - {"loader", "train"}:
        parser.error("sections are loader and train")
    n_clips = args.n_clips or (32 if args.quick else 96)
    started = time.perf_counter()
    tables: list[Table] = []
    results: dict[str, Any] = {}
    data = None
    if "loader" in sections:
        say(f"bench_loader: data in {CACHE}")
        data = prepare(args.seconds, args.seed, args.rebuild)
        say(f"[loader] data ready after {time.perf_counter() - started:.0f} s")
        t, results["loader"] = bench_loader(data, n_clips, args.seed, rounds=2 if args.quick else 3)
        tables += t
        print(t[0].markdown(), flush=True)
    if "train" in sections:
        say("[train]")
        t, results["train"] = bench_train(rounds=1 if args.quick else 3, batch=2, width=args.width,
                                          frames=CLIP_FRAMES)
        tables += t
        print(t[0].markdown(), flush=True)
    seconds = time.perf_counter() - started
    info = machine()
    import torch

    command = "python bench/bench_loader.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "### bench_loader (deepepil.ml)", "",
        f"Command: `{command.strip()}`  ",
        f"Date: {info['date']}; {seconds / 60:.1f} min including data preparation  ",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM, {info['os']}, no GPU; the cores are "
        "shared with other work, whose load shows in the 'machine CPU busy' column  ",
        f"Python {info['python']}; torch {torch.__version__}; {info['versions']}  ",
    ]
    if data is not None:
        lines.append(f"Data: synthetic recording size='full' (IR/depth 512x424), {args.seconds:g} s at 30 fps, seed "
                     f"{args.seed}; build times {data['meta'].get('build_seconds')}  ")
    lines.append("")
    lines += [t.markdown() for t in tables]
    text = "\n".join(lines)
    out = args.out or _data.CACHE / "results" / f"bench_loader{'-quick' if args.quick else ''}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    raw = _data.CACHE / "results" / out.with_suffix(".json").name  # numbers for tools, beside the other benches
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"machine": info, "command": command, "results": results},
                                                   indent=1, default=str))
    say(f"bench_loader ran {seconds:.0f} s; markdown: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
