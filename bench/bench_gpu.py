"""Training throughput of the I3D model with bf16 autocast on a GPU, and whether the clip loader keeps up.

    python bench/bench_gpu.py                         # on a CUDA GPU: about 4-6 minutes, at most --max-minutes 8
    python bench/bench_gpu.py --device cpu --quick    # smoke run without a GPU: under a minute on 2 cores
    python bench/bench_gpu.py --out OUT.md            # markdown for docs/benchmarks.md

Clips are 64 frames at the recording's 30 fps (2.1 s, like the 2-second clips of the seed
group's IR + depth study) of 224x224 pixels, with **2 channels: IR and depth**, as
``ClipDataset(streams=("ir", "depth"), crop="patient")`` stacks them (the streams of the
Kinect-style recordings that a clinic's store holds for every recording; no colour).

model    the I3D network (Inception-v1 inflated to 3D, width 1.0) alone, synthetic clips already
         on the device: forward + backward + AdamW step, clips/s, median of rounds after warm-up,
         ``torch.backends.cudnn.benchmark = True``; bf16 autocast and float32 (what a user would
         otherwise pick; PyTorch's default lets cuDNN run float32 convolutions in TF32), each in
         NCDHW and channels_last_3d. The faster bf16 format is used below.
loader   ClipDataset on a real store through a DataLoader (``--workers`` processes, default the
         cores less 2; pinned memory, persistent workers, prefetch) and the copy to the device,
         nothing else: clips/s
e2e      the same DataLoader feeding the bf16 training step: clips/s; the loader and end-to-end
         rounds take turns, each over other clips

Targets (issue 7): the GPU sustains >= 100 clips/s end to end, and the loader keeps up with the
model (loader / model alone >= 1). PASS / FAIL lines are printed; a CPU run prints SKIP.

Without a CUDA GPU visible to torch and without ``--device cpu``, the script says so and
exits with status 2, measuring nothing: a GPU run that quietly fell back to the CPU would
report numbers that mean nothing. Exit status 0 otherwise, FAIL lines included.

The recording is bench_loader.py's (full-size IR and depth 512x424, 30 s at 30 fps, seed 0),
rendered and ingested once into ``.bench-data/loader/`` (about a minute; nothing is downloaded);
the MP4s bench_loader also makes are not needed here. The checkout's ``deepepil`` is put on
``sys.path``, so it need not be installed; its dependencies (zarr, numcodecs, SQLAlchemy,
pandas, xarray; PyAV is not needed) must be importable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # the checkout's deepepil, also where it is not installed (the GPU machine)

import _data  # noqa: E402
from _measure import Busy, Table, Target  # noqa: E402
from bench_loader import CACHE as LOADER_CACHE  # noqa: E402
from bench_loader import OrderSampler, prepare_store  # noqa: E402

TARGET_CLIPS_PER_S = 100.0
STREAMS = ("ir", "depth")
#: Full run and ``--quick`` defaults: clip frames, side in pixels, batch, model width, rounds, steps per
#: model round, warm-up steps, waves per data round (a wave: one batch per worker).
FULL = {"frames": 64, "size": 224, "batch": 16, "width": 1.0, "rounds": 3, "model_rounds": 5, "steps": 8,
        "warmup": 3, "waves": 3}
QUICK = {"frames": 16, "size": 112, "batch": 2, "width": 0.25, "rounds": 2, "model_rounds": 2, "steps": 2,
         "warmup": 1, "waves": 2}
#: Seconds the loader and end-to-end rounds may take together before they are shortened.
DATA_BUDGET_SECONDS = 180.0
say = _data.log


# -- data ------------------------------------------------------------------------------------------


def clip_dataset(store: Path, truth: dict[str, Any], frames: int, size: int, stride_frames: int = 1):
    """IR + depth clips of ``frames`` frames at the recording's rate over the whole recording, patient crop.

    The target is the MOI label of the body region with the most MOIs (it only sets the class count).
    """
    import pandas as pd

    from deepepil.ml import ClipDataset

    uri = str(store)
    mois = pd.DataFrame([{"storage_uri": uri, "recording_name": "rec", "region": m["region"], "label": m["label"],
                          "laterality": m["laterality"], "start_frame": m["start_frame"],
                          "end_frame": m["end_frame"], "fps": 30.0} for m in truth["mois"]])
    region = mois["region"].value_counts().index[0]
    recordings = pd.DataFrame([{"storage_uri": uri, "name": "rec", "patient_code": truth["patient_code"]}])
    return ClipDataset(mois, recordings, target=f"moi:{region}", streams=STREAMS, clip_frames=frames, fps=None,
                       window="recording", stride_frames=stride_frames, size=(size, size), crop="patient")


# -- the training step -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A numeric precision and memory format of the training step."""

    dtype_name: str  # "bf16" (autocast) or "float32"
    channels_last: bool

    @property
    def label(self) -> str:
        how = "bf16 autocast" if self.dtype_name == "bf16" else "float32"
        return f"{how}, {'channels_last_3d' if self.channels_last else 'NCDHW'}"

    @property
    def autocast_dtype(self):
        import torch

        return torch.bfloat16 if self.dtype_name == "bf16" else None


VARIANTS = (Variant("bf16", False), Variant("bf16", True), Variant("float32", False), Variant("float32", True))


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """The I3D model, AdamW and one training step as deepepil.ml.training takes it (loss in float32)."""

    def __init__(self, variant: Variant, device, num_classes: int, in_channels: int, width: float,
                 seed: int = 0) -> None:
        import torch

        from deepepil.ml import build_model, count_parameters

        torch.manual_seed(seed)
        self.variant, self.device = variant, device
        self.model = build_model("i3d", num_classes, in_channels, width=width).to(device)
        if variant.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.model.train()
        self.parameters = count_parameters(self.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4)

    def prepare(self, clips, targets):
        """A batch on the device, in the variant's memory format."""
        import torch

        clips = clips.to(self.device, non_blocking=True)
        if self.variant.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        return clips, targets.to(self.device, non_blocking=True)

    def step(self, clips, targets) -> None:
        import torch
        import torch.nn.functional as F

        dtype = self.variant.autocast_dtype
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            logits = self.model(clips)
        F.cross_entropy(logits.float(), targets).backward()
        self.optimizer.step()


def _oom_error():
    import torch

    return getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def bench_model(device, shape: tuple[int, ...], num_classes: int, width: float, *, rounds: int, steps: int,
                warmup: int, variants: Sequence[Variant] = VARIANTS,
                deadline: Optional[float] = None) -> dict[str, dict[str, Any]]:
    """Clips/s of the training step alone, per variant, on synthetic clips of ``shape`` (N, C, T, H, W) on ``device``.

    Each variant: ``warmup`` untimed steps (cuDNN's algorithm search happens there), then ``rounds``
    rounds of ``steps`` steps, each timed between device synchronizations; the median round counts.
    Variants not started by ``deadline`` (a ``time.perf_counter()`` value) are skipped, the first excepted.
    """
    import torch

    batch = shape[0]
    out: dict[str, dict[str, Any]] = {}
    for variant in variants:
        result: dict[str, Any] = {"variant": variant.label}
        if out and deadline is not None and time.perf_counter() > deadline:
            result.update(clips_per_s=float("nan"), error="skipped: out of time (--max-minutes)")
            say(f"  {variant.label}: {result['error']}")
            out[variant.label] = result
            continue
        trainer = x = y = None
        try:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            trainer = Trainer(variant, device, num_classes, shape[1], width)
            gen = torch.Generator(device=device).manual_seed(0)
            x = torch.randn(shape, device=device, generator=gen)
            y = torch.randint(0, num_classes, (batch,), device=device, generator=gen)
            x, y = trainer.prepare(x, y)
            t0 = time.perf_counter()
            for _ in range(warmup):
                trainer.step(x, y)
            synchronize(device)
            result["warmup_seconds"] = time.perf_counter() - t0
            rates = []
            for _ in range(rounds):
                synchronize(device)
                t0 = time.perf_counter()
                for _ in range(steps):
                    trainer.step(x, y)
                synchronize(device)
                rates.append(steps * batch / (time.perf_counter() - t0))
            result.update(clips_per_s=float(np.median(rates)), rounds=rates, parameters=trainer.parameters)
            if device.type == "cuda":
                result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            say(f"  {variant.label}: {result['clips_per_s']:.1f} clips/s (warm-up {result['warmup_seconds']:.1f} s)")
        except _oom_error():
            result.update(clips_per_s=float("nan"), error=f"out of memory at batch {batch}; try a smaller --batch")
            say(f"  {variant.label}: {result['error']}")
        finally:
            trainer = x = y = None  # free the device memory before the next variant
        out[variant.label] = result
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


# -- loader and end to end -------------------------------------------------------------------------


def shm_free_bytes() -> Optional[int]:
    """Free bytes in /dev/shm, where DataLoader workers hand batches to the main process (None: unknown)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def fit_prefetch(prefetch: int, workers: int, batch_bytes: int, shm_bytes: Optional[int]) -> tuple[int, str]:
    """The prefetch factor to use: ``prefetch``, lowered (to 1 at least) so the batches in flight fit /dev/shm.

    Batches in flight are ``workers * prefetch`` (each worker's queue), plus one being handed over per
    worker; they may take half of the free space. Returns the factor and a note ('' when unchanged).
    """
    if workers == 0 or shm_bytes is None:
        return prefetch, ""
    room = shm_bytes // 2
    fits = max(1, room // max(batch_bytes * workers, 1) - 1)
    if fits >= prefetch:
        return prefetch, ""
    note = (f"prefetch factor lowered from {prefetch} to {fits}: {workers} workers x batches of "
            f"{batch_bytes / 2**20:.0f} MiB must fit in half of /dev/shm's {shm_bytes / 2**30:.1f} GiB free")
    if room < batch_bytes * workers * 2:
        note += ("; even so it may not: workers may die with a bus error (mount a larger /dev/shm or use fewer "
                 "--workers)")
    return int(fits), note


def _chunks(n_items: int, count: int, size: int, seed: int) -> list[np.ndarray]:
    """``count`` chunks of ``size`` clip indices, in random order, repeating only once all were used."""
    rng = np.random.default_rng(seed)
    need = count * size
    order = np.concatenate([rng.permutation(n_items) for _ in range(-(-need // n_items))])[:need]
    return [order[k * size:(k + 1) * size] for k in range(count)]


def bench_data(dataset, device, variant: Variant, width: float, *, batch: int, workers: int, prefetch: int,
               rounds: int, waves: int, seed: int = 0,
               budget_seconds: float = DATA_BUDGET_SECONDS) -> dict[str, Any]:
    """Clips/s of the loader alone (to the device) and end to end (feeding the training step), taking turns.

    One DataLoader (``workers`` persistent processes, pinned memory on CUDA) serves every round; a
    warm-up epoch of one batch per worker starts the workers, and one training step on its first batch
    warms the model. A round is ``waves`` batches per worker, so every worker has the same share; it
    is timed from asking for the first batch to the last step done on the device. Rounds are shortened
    (fewer waves, then rounds) when the warm-up rate says they would take over ``budget_seconds``.
    """
    import torch

    slots = max(workers, 1)
    channels, frames = dataset.in_channels, dataset.spec.clip_frames
    batch_bytes = batch * channels * frames * dataset.size[0] * dataset.size[1] * 4
    shm = shm_free_bytes()
    prefetch_used, note = fit_prefetch(prefetch, workers, batch_bytes, shm)
    if note:
        say(f"  note: {note}")
    sampler = OrderSampler()
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=workers > 0, prefetch_factor=prefetch_used if workers else None, drop_last=True)
    trainer = Trainer(variant, device, dataset.num_classes, channels, width, seed)
    result: dict[str, Any] = {"workers": workers, "batch": batch, "prefetch_factor": prefetch_used,
                              "prefetch_note": note, "batch_mib": batch_bytes / 2**20,
                              "shm_free_gib": None if shm is None else shm / 2**30, "variant": variant.label,
                              "clips_in_dataset": len(dataset)}

    (warm,) = _chunks(len(dataset), 1, slots * batch, seed + 1)
    sampler.indices = warm.tolist()
    t0 = time.perf_counter()
    for k, (x, y) in enumerate(loader):
        if k == 0:
            trainer.step(*trainer.prepare(x, y))
    synchronize(device)
    warm_seconds = time.perf_counter() - t0
    warm_rate = len(warm) / warm_seconds
    result["warmup"] = {"clips": len(warm), "seconds": warm_seconds}
    planned = 2 * rounds * waves * slots * batch / warm_rate
    while planned > budget_seconds and (waves > 1 or rounds > 2):
        if waves > 1:
            waves -= 1
        else:
            rounds -= 1
        planned = 2 * rounds * waves * slots * batch / warm_rate
    result.update(rounds=rounds, waves=waves, clips_per_round=waves * slots * batch)
    say(f"  warm-up (workers starting): {len(warm)} clips in {warm_seconds:.1f} s; {rounds} rounds of "
        f"{waves * slots * batch} clips each way, about {planned:.0f} s")

    chunks = _chunks(len(dataset), 2 * rounds, waves * slots * batch, seed + 2)
    runs: dict[str, list[dict[str, float]]] = {"loader": [], "e2e": []}
    for r in range(rounds):
        for kind, chunk in (("loader", chunks[2 * r]), ("e2e", chunks[2 * r + 1])):
            sampler.indices = chunk.tolist()
            clips, wait = 0, 0.0
            synchronize(device)
            with Busy() as busy:
                it = iter(loader)
                while True:
                    w0 = time.perf_counter()
                    try:
                        x, y = next(it)
                    except StopIteration:
                        break
                    wait += time.perf_counter() - w0
                    x, y = trainer.prepare(x, y)
                    if kind == "e2e":
                        trainer.step(x, y)
                    clips += len(x)
                synchronize(device)
            runs[kind].append({"clips": clips, "seconds": busy.seconds, "clips_per_s": clips / busy.seconds,
                               "data_wait_share": wait / busy.seconds, "cpu_busy": busy.share})
            say(f"    round {r + 1}: {kind}: {clips / busy.seconds:.1f} clips/s "
                f"(waiting for data {100 * wait / busy.seconds:.0f} % of the time)")
    del loader
    for kind, rows in runs.items():
        result[kind] = {"clips_per_s": float(np.median([r["clips_per_s"] for r in rows])),
                        "data_wait_share": float(np.median([r["data_wait_share"] for r in rows])),
                        "cpu_busy": float(np.median([r["cpu_busy"] for r in rows])), "runs": rows}
    return result


# -- verdicts and report ---------------------------------------------------------------------------


def best_bf16(model: dict[str, dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The faster bf16 variant's result (None when none ran)."""
    rows = [r for r in model.values() if r["variant"].startswith("bf16") and r["clips_per_s"] == r["clips_per_s"]]
    return max(rows, key=lambda r: r["clips_per_s"]) if rows else None


def bf16_vs_float32(model: dict[str, dict[str, Any]]) -> Optional[float]:
    """Clips/s of the faster bf16 variant over the faster float32 one (None without both)."""
    bf16 = best_bf16(model)
    fp32 = [r["clips_per_s"] for r in model.values()
            if r["variant"].startswith("float32") and r["clips_per_s"] == r["clips_per_s"]]
    return bf16["clips_per_s"] / max(fp32) if bf16 is not None and fp32 else None


def targets(model: dict[str, dict[str, Any]], data: Optional[dict[str, Any]], on_gpu: bool) -> list[Target]:
    """The issue's targets as rows: end to end >= 100 clips/s, the loader keeps up, the model alone >= 100."""
    def verdict(ok: bool) -> Optional[bool]:
        return ok if on_gpu else None

    bf16 = best_bf16(model)
    wanted = f">= {TARGET_CLIPS_PER_S:g} clips/s"
    rows = []
    if data is not None:
        rate = data["e2e"]["clips_per_s"]
        met = verdict(rate >= TARGET_CLIPS_PER_S)
        rows.append(Target(f"end to end: {data['workers']} loader worker(s) feeding the training step",
                           f"{rate:.1f} clips/s", wanted, met))  # type: ignore[arg-type]
        if bf16 is not None:
            ratio = data["loader"]["clips_per_s"] / bf16["clips_per_s"]
            rows.append(Target("the loader keeps up: loader alone / model alone", f"{ratio:.2f}", ">= 1",
                               verdict(ratio >= 1.0)))  # type: ignore[arg-type]
    if bf16 is not None:
        rate = bf16["clips_per_s"]
        rows.append(Target(f"model alone ({bf16['variant']})", f"{rate:.1f} clips/s", wanted,
                           verdict(rate >= TARGET_CLIPS_PER_S)))  # type: ignore[arg-type]
    return rows


def verdict_lines(rows: Sequence[Target]) -> list[str]:
    """``PASS`` / ``FAIL`` (``SKIP`` off the GPU) lines for the console."""
    out = []
    for t in rows:
        word = "SKIP" if t.met is None else ("PASS" if t.met else "FAIL")
        why = "  (CPU smoke run: the targets are for a GPU)" if t.met is None else ""
        out.append(f"{word}  {t.name}: {t.measured} (target {t.target}){why}")
    return out


def _module_version(name: str) -> str:
    try:
        module = __import__(name)
    except ImportError:
        return "missing"
    return str(getattr(module, "__version__", "?"))


def machine_info(device) -> dict[str, Any]:
    """CPU, RAM, GPU, /dev/shm and library versions (no PyAV needed, unlike _measure.machine)."""
    import datetime as dt

    import torch

    info: dict[str, Any] = {"date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
                            "nproc": len(os.sched_getaffinity(0)), "cpu": "?", "ram": "?",
                            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
                            "torch": torch.__version__, "device": str(device)}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name"))
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
        info["ram"] = f"{kib / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    shm = shm_free_bytes()
    info["shm_free"] = "?" if shm is None else f"{shm / 2**30:.1f} GiB"
    info["versions"] = ", ".join(f"{n} {_module_version(n)}" for n in ("numpy", "zarr", "numcodecs", "xarray"))
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["tf32_convolutions"] = torch.backends.cudnn.allow_tf32
    return info


def _percent(share: float) -> str:
    return "n/a" if share != share else f"{100 * share:.0f} %"


def report(sizes: dict[str, Any], info: dict[str, Any], model: dict[str, Any],
           data: Optional[dict[str, Any]], rows: Sequence[Target], store: Optional[dict[str, Any]],
           seconds: float, command: str) -> str:
    """The markdown: header, targets, model alone, loader and end to end."""
    on_gpu = info["device"].startswith("cuda")
    clip = f"{sizes['frames']}x{sizes['size']}x{sizes['size']}"
    where = (f"GPU {info['gpu']}; CUDA {info['cuda']}, cuDNN {info['cudnn']}" if on_gpu
             else "no GPU: a CPU smoke run, the targets do not apply")
    lines = [
        "### bench_gpu (I3D training throughput, bf16)", "",
        f"Command: `{command.strip()}`  ",
        f"Date: {info['date']}; {seconds / 60:.1f} min including data preparation  ",
        f"Machine: {where}; {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM, /dev/shm {info['shm_free']} "
        f"free, {info['os']}  ",
        f"Python {info['python']}; torch {info['torch']}; {info['versions']}  ",
        f"Clips: {clip} (frames x height x width) at 30 fps, 2 channels (IR and depth, patient crop found in "
        f"depth); batch {sizes['batch']}; I3D width {sizes['width']:g}; AdamW; loss in float32  ",
    ]
    if store is not None:
        lines.append(f"Data: synthetic recording size='full' (IR/depth 512x424), {store['seconds']:g} s at 30 fps, "
                     f"seed {store['seed']}, {store.get('clips', '?')} clips (stride 1 frame); "
                     f"build times {store['meta'].get('build_seconds')}  ")
    lines.append("")
    if rows:
        t = Table("Targets (issue 7)", ["target", "measured", "wanted", ""])
        for r in rows:
            t.add(r.name, r.measured, r.target, "n/a (CPU)" if r.met is None else ("met" if r.met else "**missed**"))
        lines.append(t.markdown())
    if model:
        t = Table(f"Model alone: training step on synthetic {clip} clips on the device, batch {sizes['batch']}, "
                  f"median of {sizes['model_rounds']} rounds of {sizes['steps']} steps after {sizes['warmup']} "
                  "warm-up steps", ["precision, memory format", "clips/s", "ms per step", "peak memory",
                                    "vs float32 NCDHW"])
        base = model.get(Variant("float32", False).label, {}).get("clips_per_s")
        for r in model.values():
            rate = r["clips_per_s"]
            t.add(r["variant"], rate if rate == rate else r.get("error", "n/a"),
                  1e3 * sizes["batch"] / rate if rate == rate else float("nan"),
                  f"{r['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in r else "n/a",
                  f"{rate / base:.2f}x" if base and rate == rate else "n/a")
        ratio = bf16_vs_float32(model)
        if ratio is not None:
            t.notes.append(f"bf16 autocast vs float32 (the faster format of each): **{ratio:.2f}x**"
                           + ("; float32 convolutions in TF32 (PyTorch's default, "
                              "torch.backends.cudnn.allow_tf32)" if info.get("tf32_convolutions") else "")
                           + ("; cudnn.benchmark on." if on_gpu else "."))
        lines.append(t.markdown())
    if data is not None:
        t = Table(f"Loader and end to end: ClipDataset -> DataLoader ({data['workers']} worker(s), "
                  f"batch {data['batch']}, "
                  f"prefetch factor {data['prefetch_factor']}, pinned memory: {on_gpu}, persistent workers) -> "
                  f"{info['device']}; {data['rounds']} rounds of {data['clips_per_round']} clips each, taking turns; "
                  "median over rounds", ["what", "clips/s", "ms per clip per worker", "waiting for data",
                                         "machine CPU busy", "vs model alone"])
        bf16 = best_bf16(model)
        for kind, what in (("loader", "loader alone (to the device)"),
                           ("e2e", f"end to end ({data['variant']} training step)")):
            d = data[kind]
            loader_only = kind == "loader"
            t.add(what, d["clips_per_s"], 1e3 * max(data["workers"], 1) / d["clips_per_s"] if loader_only else "-",
                  "-" if loader_only else f"{100 * d['data_wait_share']:.0f} %", _percent(d["cpu_busy"]),
                  f"{d['clips_per_s'] / bf16['clips_per_s']:.2f}x" if bf16 else "n/a")
        if data["prefetch_note"]:
            t.notes.append(f"Note: {data['prefetch_note']}.")
        t.notes.append(f"A batch is {data['batch_mib']:.0f} MiB of float32. 'waiting for data': share of the time "
                       "the training loop waited for the next batch.")
        lines.append(t.markdown())
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------


def _resolve_device(name: str):
    """The torch device to use, or an exit message when CUDA was asked for and is not there."""
    import torch

    if name == "cpu":
        return torch.device("cpu"), None
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        return None, (f"bench_gpu: no CUDA GPU is visible to torch {torch.__version__} (CUDA build: {build}); "
                      "nothing was measured. Run it on the GPU machine with a CUDA build of torch, or "
                      "`python bench/bench_gpu.py --device cpu --quick` for a smoke run on the CPU.")
    device = torch.device(name)
    if not torch.cuda.is_bf16_supported():
        return None, f"bench_gpu: {torch.cuda.get_device_name(device)} does not support bfloat16; nothing was measured"
    return device, None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="cuda", help="cuda (default; exit status 2 without a GPU), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke sizes: {QUICK['frames']}x{QUICK['size']}x{QUICK['size']} clips, batch "
                             f"{QUICK['batch']}, width {QUICK['width']}, {QUICK['rounds']} rounds")
    parser.add_argument("--only", default="model,data", help="comma-separated sections: model, data (loader + e2e)")
    parser.add_argument("--batch", type=int, help=f"clips per batch (default {FULL['batch']}; quick {QUICK['batch']})")
    parser.add_argument("--frames", type=int, help=f"frames per clip (default {FULL['frames']})")
    parser.add_argument("--size", type=int, help=f"clip height and width in pixels (default {FULL['size']})")
    parser.add_argument("--width", type=float, help=f"I3D width multiplier (default {FULL['width']:g})")
    parser.add_argument("--workers", type=int,
                        help="DataLoader worker processes (default: the cores less 2, for the training loop and the "
                             "pin-memory thread; 1 on the CPU)")
    parser.add_argument("--prefetch", type=int, default=2, help="batches each worker prepares ahead (default 2)")
    parser.add_argument("--rounds", type=int, help=f"loader / end-to-end rounds (default {FULL['rounds']})")
    parser.add_argument("--max-minutes", type=float, default=8.0,
                        help="the run's time budget (default 8): later model variants are skipped and the loader / "
                             "end-to-end rounds shortened to stay near it")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of the recording (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached recording")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown output (default .bench-data/results/bench_gpu.md); JSON goes to "
                             ".bench-data/results/")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    if not sections or set(sections) - {"model", "data"}:
        parser.error(f"--only takes model and/or data, got {args.only!r}")
    for name in ("batch", "frames", "size", "rounds", "prefetch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}")
    if not args.max_minutes > 0:
        parser.error(f"--max-minutes must be > 0, got {args.max_minutes}")
    if args.workers is not None and args.workers < 0:
        parser.error(f"--workers must be >= 0, got {args.workers}")
    if (args.frames is not None and args.frames < 8) or (args.size is not None and args.size < 32):
        parser.error("the I3D model needs clips of at least 8 frames and 32x32 pixels")

    import torch

    device, problem = _resolve_device(args.device)
    if problem:
        print(problem, file=sys.stderr, flush=True)
        return 2
    defaults = QUICK if args.quick else FULL
    sizes = {k: v for k, v in defaults.items()}
    sizes.update({k: getattr(args, k) for k in ("batch", "frames", "size", "width", "rounds")
                  if getattr(args, k) is not None})
    cores = len(os.sched_getaffinity(0))
    workers = args.workers if args.workers is not None else (max(1, cores - 2) if device.type == "cuda" else 1)
    # the workers take one core each; this process (training loop, pin-memory copies) the rest
    torch.set_num_threads(max(1, cores - workers))
    if device.type == "cpu" and not args.quick:
        say("note: a full-size run on the CPU takes a very long time; --quick is the smoke run")
    torch.backends.cudnn.benchmark = True

    started = time.perf_counter()
    budget_seconds = 60.0 * args.max_minutes
    say(f"bench_gpu: device {device}, clips {sizes['frames']}x{sizes['size']}x{sizes['size']} x 2 channels "
        f"(ir + depth), batch {sizes['batch']}, I3D width {sizes['width']:g}, {workers} loader worker(s)")
    say(f"[data] recording in {LOADER_CACHE}")
    store = prepare_store(args.seconds, args.seed, args.rebuild)
    dataset = clip_dataset(store["store"], store["truth"], sizes["frames"], sizes["size"])
    store["clips"] = len(dataset)
    say(f"  {len(dataset)} clips, {dataset.num_classes} classes, channels {list(dataset.channels)}; "
        f"ready after {time.perf_counter() - started:.0f} s")

    model: dict[str, Any] = {}
    if "model" in sections:
        say("[model] training step alone, synthetic clips on the device")
        shape = (sizes["batch"], dataset.in_channels, sizes["frames"], sizes["size"], sizes["size"])
        model = bench_model(device, shape, dataset.num_classes, sizes["width"], rounds=sizes["model_rounds"],
                            steps=sizes["steps"], warmup=sizes["warmup"], deadline=started + 0.6 * budget_seconds)
    data = None
    if "data" in sections:
        best = best_bf16(model)
        variant = next((v for v in VARIANTS if best is not None and v.label == best["variant"]), Variant("bf16", True))
        say(f"[loader, e2e] {workers} worker(s), {variant.label}")
        left = budget_seconds - (time.perf_counter() - started) - 30.0  # 30 s: workers starting, the report
        data = bench_data(dataset, device, variant, sizes["width"], batch=sizes["batch"], workers=workers,
                          prefetch=args.prefetch, rounds=sizes["rounds"], waves=sizes["waves"], seed=args.seed,
                          budget_seconds=min(max(left, 30.0), DATA_BUDGET_SECONDS))
    seconds = time.perf_counter() - started
    rows = targets(model, data, device.type == "cuda")
    info = machine_info(device)
    command = "python bench/bench_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(sizes, info, model, data, rows, store, seconds, command)
    print(text, flush=True)
    bf16, ratio = best_bf16(model), bf16_vs_float32(model)
    if ratio is not None:
        say(f"bf16 / float32 (model alone, faster format each): {ratio:.2f}x")
    if data is not None and bf16 is not None:
        say(f"loader / model alone: {data['loader']['clips_per_s'] / bf16['clips_per_s']:.2f} "
            f"({'keeps up' if data['loader']['clips_per_s'] >= bf16['clips_per_s'] else 'does not keep up'}); "
            f"end to end / model alone: {data['e2e']['clips_per_s'] / bf16['clips_per_s']:.2f}")
    for line in verdict_lines(rows):
        say(line)
    suffix = ("-quick" if args.quick else "") + ("-cpu" if device.type == "cpu" else "")
    out = args.out or _data.CACHE / "results" / f"bench_gpu{suffix}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    raw = _data.CACHE / "results" / out.with_suffix(".json").name
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"machine": info, "command": command, "sizes": sizes, "workers": workers,
                               "model": model, "data": data,
                               "targets": [{"name": r.name, "measured": r.measured, "target": r.target,
                                            "met": r.met} for r in rows]}, indent=1, default=str))
    say(f"bench_gpu ran {seconds:.0f} s; markdown: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
