"""Demonstrated learning: leave-one-patient-out on a labelled synthetic cohort (issue 7, point 7).

    python bench/demo_learning.py --patients 12 --seconds 8 --epochs 4     # syndrome, under a minute on 2 cores
    python bench/demo_learning.py --skip-syndrome --moi-regions "whole body,head/face" --out results.md

The cohort (``--patients`` synthetic patients, FLE-like and TLE-like alternating, one recording
each) is rendered, ingested (IR + depth), registered and labelled with the generator's truth
(the seizure with its localization, every MOI) in an SQLite label database, then frozen into a
snapshot -- all cached in ``.bench-data/learning/<parameters>/``. Training goes through
:func:`deepepil.ml.train` with leave-one-patient-out folds, a fixed number of epochs and no
validation part (no early stopping: the test patient never steers training), no tracking.

syndrome   clip- and patient-level balanced accuracy and macro F1, per fold and pooled
moi        for each ``--moi-regions`` region: target ``moi:<region>`` over the whole recording
           (clips covered by an MOI of that region get its label, the rest ``none``); detection
           recall = share of MOI clips predicted as any MOI class, and the false-alarm rate on
           ``none`` clips, pooled over the held-out patients
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = "demo-learning"


def build_cohort(folder: Path, patients: int, seconds: float, size: str, seed: int = 0) -> dict[str, Any]:
    """The labelled cohort in ``folder`` (built once; an unfinished build is redone)."""
    from deepepil.labels import connect
    from deepepil.ml.demo import ADMIN, make_labelled_cohort

    meta_path = folder / "cohort.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'labels.sqlite'}"
    t0 = time.perf_counter()
    ids, truths = make_labelled_cohort(url, folder / "store", patients=patients, seconds=seconds,
                                       streams=("ir", "depth"), size=size, seed=seed,
                                       on_recording=lambda name: print(f"  labelled {name}", flush=True))
    with connect(url, user=ADMIN) as store:
        snap = store.create_snapshot(SNAPSHOT)
    meta = {"url": url, "user": ADMIN, "snapshot": SNAPSHOT, "snapshot_hash": snap.content_hash,
            "build_seconds": round(time.perf_counter() - t0, 1), "recording_ids": ids, "truths": truths}
    meta_path.write_text(json.dumps(meta))
    return meta


def make_config(args: argparse.Namespace, meta: dict[str, Any], out: Path, target: str, name: str) -> dict:
    """The training configuration of one target."""
    options: dict[str, Any] = {"width": args.width}
    if args.model == "cnn2d":
        options["head"] = args.head
    data: dict[str, Any] = {
        "snapshot": meta["snapshot"], "url": meta["url"], "user": meta["user"], "target": target,
        "streams": ["ir", "depth"], "clip_frames": args.clip_frames, "fps": args.fps,
        "size": [args.pixels, args.pixels], "augment": {"flip_p": 0.5}, "motion": args.motion,
    }
    if target != "syndrome":
        data["window"] = "recording"
    return {
        "experiment": "demo-learning", "run_name": name, "output_dir": str(out), "seed": args.seed,
        "data": data,
        "model": {"name": args.model, "options": options},
        "split": {"method": "lopo", "validation": "none"},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "early_stopping": None,
                  "final_model": False, "num_workers": 0},
        "tracking": {"enabled": False, "register": None},
    }


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def syndrome_section(result: Any, seconds: float) -> list[str]:
    ev = result.evaluation
    o = ev.overall
    lines = [f"### Syndrome (FLE vs TLE), {int(o['patients'])} patients, {int(o['clips'])} clips, "
             f"{seconds:.0f} s training + testing", "",
             f"Pooled over the held-out patients: clip balanced accuracy **{_fmt(o['balanced_accuracy'])}**, "
             f"macro F1 **{_fmt(o['f1_macro'])}**, ROC AUC {_fmt(o['roc_auc'])}, accuracy {_fmt(o['accuracy'])}; "
             f"patient vote: accuracy {_fmt(o['patient_accuracy'])}, "
             f"balanced accuracy {_fmt(o['patient_balanced_accuracy'])}.", "",
             "| held-out patient (fold) | true | clips | clip accuracy | patient vote |",
             "| --- | --- | ---: | ---: | --- |"]
    pats = ev.patients.set_index("patient_code")
    for _, f in ev.folds.iterrows():
        p = pats.loc[f["fold"]]
        lines.append(f"| {f['fold']} | {p['true']} | {int(f['clips'])} | {_fmt(f['accuracy'])} | "
                     f"{p['predicted']} ({'right' if p['correct'] else 'wrong'}) |")
    lines += ["", "Confusion (clips; rows true, columns predicted):", "",
              "| | " + " | ".join(ev.confusion.columns) + " |", "| --- |" + " ---: |" * len(ev.confusion.columns)]
    for cls, row in ev.confusion.iterrows():
        lines.append(f"| {cls} | " + " | ".join(str(int(v)) for v in row) + " |")
    return lines + [""]


def moi_rows(result: Any, region: str, seconds: float) -> str:
    ev = result.evaluation
    classes = list(result.classes)
    pred = ev.predictions
    from deepepil.ml.metrics import prob_column

    prob = pred[[prob_column(c) for c in classes]].to_numpy()
    y = pred["target_index"].to_numpy()
    yhat = prob.argmax(1)
    none = classes.index("none")
    moi, bg = y != none, y == none
    recall = float((yhat[moi] != none).mean()) if moi.any() else float("nan")
    exact = float((yhat[moi] == y[moi]).mean()) if moi.any() else float("nan")
    false_alarm = float((yhat[bg] != none).mean()) if bg.any() else float("nan")
    o = ev.overall
    return (f"| {region} | {', '.join(c for c in classes if c != 'none')} | {int(moi.sum())} / {int(bg.sum())} | "
            f"**{_fmt(recall)}** | {_fmt(exact)} | {_fmt(false_alarm)} | {_fmt(o['balanced_accuracy'])} | "
            f"{seconds:.0f} s |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patients", type=int, default=12)
    p.add_argument("--seconds", type=float, default=8.0, help="length of each recording")
    p.add_argument("--size", default="tiny", choices=["tiny", "small"], help="synthetic camera size")
    p.add_argument("--model", default="cnn2d", choices=["cnn2d", "i3d", "r2plus1d"])
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--head", default="mean", help="cnn2d temporal head")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--clip-frames", type=int, default=8)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--pixels", type=int, default=32, help="clip height and width")
    p.add_argument("--motion", action=argparse.BooleanOptionalAction, default=True,
                   help="add frame-difference channels (ClipDataset(motion=True))")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0, help="training seed (weights, shuffling, augmentation)")
    p.add_argument("--cohort-seed", type=int, default=0, help="seed of the synthetic cohort (other patients)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--moi-regions", default="", help="comma-separated regions for MOI detection ('' skips)")
    p.add_argument("--skip-syndrome", action="store_true")
    p.add_argument("--data-dir", default=str(ROOT / ".bench-data" / "learning"))
    p.add_argument("--out", default=None, help="write the markdown results here")
    args = p.parse_args(argv)

    import torch

    from deepepil.ml import train

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    key = f"p{args.patients}-s{args.seconds:g}-{args.size}" + (f"-c{args.cohort_seed}" if args.cohort_seed else "")
    folder = Path(args.data_dir) / key
    print(f"cohort {folder}", flush=True)
    meta = build_cohort(folder, args.patients, args.seconds, args.size, args.cohort_seed)
    runs = folder / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    command = "python bench/demo_learning.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["## Demonstrated learning", "",
             f"`{command}` -- {args.patients} synthetic patients (FLE-like and TLE-like alternating), one "
             f"{args.seconds:g} s `{args.size}` recording each (IR + depth), labelled with the generator's truth; "
             f"`{args.model}` width {args.width:g}, {args.clip_frames} frames at {args.fps:g} fps, "
             f"{args.pixels}x{args.pixels} patient crops, {args.epochs} epochs, leave-one-patient-out, "
             f"no validation part, {args.threads} CPU threads, cohort seed {args.cohort_seed}, training seed "
             f"{args.seed}. Cohort build (cached): {meta['build_seconds']:.0f} s.",
             ""]
    if not args.skip_syndrome:
        t0 = time.perf_counter()
        result = train(make_config(args, meta, runs, "syndrome", "syndrome"), progress=True)
        lines += syndrome_section(result, time.perf_counter() - t0)
        print("\n".join(lines), flush=True)
    regions = [r for r in args.moi_regions.split(",") if r]
    if regions:
        lines += ["### MOI detection per region", "",
                  "One `moi:<region>` model per region, clips over the whole recording, leave-one-patient-out. "
                  "Recall: MOI clips (covered at least half by an MOI of the region) predicted as any MOI class; "
                  "label: predicted as the right MOI class; false alarms: `none` clips predicted as an MOI.", "",
                  "| region | MOI classes | MOI / none clips | detection recall | label recall | false alarms "
                  "| balanced accuracy | time |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for region in regions:
            t0 = time.perf_counter()
            run_name = "moi-" + "".join(ch if ch.isalnum() else "_" for ch in region)
            result = train(make_config(args, meta, runs, f"moi:{region}", run_name), progress=True)
            lines.append(moi_rows(result, region, time.perf_counter() - t0))
            print(lines[-1], flush=True)
        lines.append("")
    lines.append(f"Total {time.perf_counter() - t_start:.0f} s (torch {torch.__version__}, {os.cpu_count()} CPUs).")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
