"""Training and evaluation: folds by patient, checkpoints and resume, early stopping, MLflow.

>>> from deepepil import ml
>>> result = ml.train("train.yaml")                  # or a mapping, or ml.load_config(...)   # doctest: +SKIP
>>> result.folds, result.patients, result.overall     # metric tables
>>> result.evaluation.plot_confusion()
>>> result = ml.train("train.yaml", resume=True)     # continue an interrupted run

What happens, in order:

1. The configuration is checked (:func:`deepepil.ml.load_config`), then the data: the label
   snapshot is found, the clip dataset is built (empty or one-class snapshots, missing streams,
   clips longer than a recording are errors here), every fold's split is made and checked
   (no patient on both sides, two classes to learn from, patients left for validation), and
   the model is built once with its weights file. Nothing is trained or tracked before all
   of this passed.
2. Per fold: channel statistics are measured on the fold's training clips; the model trains
   with AdamW (or SGD) and a cosine schedule, class-balanced loss, mixed precision on a GPU
   (bf16, or fp16 with loss scaling); after every epoch the validation part is scored, a
   checkpoint is written (``<run_dir>/checkpoints/<fold>/last.pt``) and early stopping
   decides; the best epoch's weights then predict the fold's test clips.
3. Test predictions of all folds are pooled into metrics per fold, per patient and overall,
   with a confusion matrix and ROC curves (:mod:`deepepil.ml.metrics`).
4. The final model trains on every patient (for the epochs the folds stopped at) and is logged
   and registered in MLflow.

Every epoch of every fold starts from seeds derived from ``seed``, the fold and the epoch, so
a run interrupted after any epoch and resumed gives the result of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepepil.errors import NotFoundError, ResumeError, SingleClassError, ValidationError
from deepepil.ml.config import Config, load_config
from deepepil.ml.metrics import Evaluation, clip_metrics, evaluate, prob_column

__all__ = ["train", "RunResult", "FoldPlan", "plan_folds", "resolve_snapshot", "predict_probs", "precision"]

_STATE_FILE = "state.json"
_FINAL = "final"


@dataclasses.dataclass(frozen=True)
class FoldPlan:
    """One fold: clip positions (in the dataset's index) to train on, validate on and test on."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def key(self) -> str:
        """A folder-safe form of the name."""
        return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.name)


@dataclasses.dataclass
class RunResult:
    """What :func:`train` returns.

    Attributes
    ----------
    evaluation : Evaluation or None
        Pooled test predictions of the folds and their metrics (None with ``split.method: none``).
    history : DataFrame
        One row per fold and epoch: losses, validation metrics, learning rate, seconds.
    epochs : DataFrame
        One row per fold (and ``final``): ``epochs_run`` and ``best_epoch`` (0-based; the weights used).
    model : torch.nn.Module or None
        The final model (trained on every patient), on the CPU, in eval mode.
    registered : ModelRef or None
        Its registered version (``name``, ``version``, ``alias``).
    """

    config: Config
    run_dir: Path
    classes: list[str]
    evaluation: Optional[Evaluation]
    history: pd.DataFrame
    model: Optional[nn.Module] = None
    run_id: Optional[str] = None
    tracking_uri: Optional[str] = None
    registered: Any = None
    inference: dict[str, Any] = dataclasses.field(default_factory=dict)
    epochs: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

    @property
    def folds(self) -> pd.DataFrame:
        return self.evaluation.folds if self.evaluation else pd.DataFrame()

    @property
    def patients(self) -> pd.DataFrame:
        return self.evaluation.patients if self.evaluation else pd.DataFrame()

    @property
    def overall(self) -> pd.Series:
        return self.evaluation.overall if self.evaluation else pd.Series(dtype=float)

    @property
    def confusion(self) -> pd.DataFrame:
        return self.evaluation.confusion if self.evaluation else pd.DataFrame()

    def __repr__(self) -> str:
        parts = [f"run_dir={str(self.run_dir)!r}", f"classes={self.classes}"]
        if self.evaluation is not None:
            o = self.evaluation.overall
            parts.append(f"balanced_accuracy={o['balanced_accuracy']:.3f}, f1_macro={o['f1_macro']:.3f}")
        if self.registered is not None:
            parts.append(f"registered={self.registered.label!r}")
        return f"RunResult({', '.join(parts)})"


# --- before anything starts: data, folds, model ----------------------------------------------


def resolve_snapshot(ref: Union[int, str], url: Optional[str] = None, user: Optional[str] = None) -> Any:
    """A label snapshot by name (the newest of that name), id or content hash (prefix of 8+ characters)."""
    from deepepil.labels.service import connect

    with connect(url, user=user) as store:
        if isinstance(ref, int):
            return store.snapshot(ref)
        listing = store.snapshots()
        named = listing[listing["name"] == ref] if len(listing) else listing
        if len(named):
            return store.snapshot(int(named["id"].max()))
        try:
            return store.snapshot(ref)
        except (ValidationError, NotFoundError):
            names = ", ".join(sorted(set(listing["name"]))) if len(listing) else "none yet"
            raise NotFoundError(f"no label snapshot named {ref!r} (nor with that id or hash); snapshots: {names}. "
                                f"Freeze one with store.create_snapshot(name)") from None


def _validation_patients(ds: Any, train_idx: np.ndarray, fraction: float, rng: np.random.Generator,
                         fold: str) -> list[str]:
    codes = ds.patient_codes[train_idx]
    targets = ds.targets[train_idx]
    by_class: dict[int, list[str]] = {}
    for patient in sorted(set(codes)):
        values, counts = np.unique(targets[codes == patient], return_counts=True)
        by_class.setdefault(int(values[counts.argmax()]), []).append(patient)
    wanted = max(1, int(round(fraction * len(set(codes)))))
    pools = {c: list(rng.permutation(p)) for c, p in sorted(by_class.items()) if len(p) >= 2}
    chosen: list[str] = []
    while len(chosen) < wanted and any(len(p) >= 2 for p in pools.values()):
        for c in sorted(pools):
            if len(chosen) < wanted and len(pools[c]) >= 2:
                chosen.append(str(pools[c].pop()))
    if not chosen:
        raise ValidationError(f"fold {fold!r}: its {len(set(codes))} training patient(s) leave none for validation "
                              f"without losing a class; use split.validation: test (optimistic) or none, or more "
                              f"patients")
    return chosen


def plan_folds(ds: Any, config: Config) -> list[FoldPlan]:
    """The folds of ``config.split`` over dataset ``ds``, checked; raises before any training."""
    from deepepil.ml.splits import check_split, grouped_kfold, leave_one_patient_out

    s = config.split
    if s.method == "none":
        return []
    splits = leave_one_patient_out(ds) if s.method == "lopo" else grouped_kfold(ds, s.n_splits, seed=config.seed)
    if s.folds is not None:
        names = [sp.name for sp in splits]
        picked = []
        for f in s.folds:
            if isinstance(f, int) and 0 <= f < len(splits):
                picked.append(splits[f])
            elif isinstance(f, str) and f in names:
                picked.append(splits[names.index(f)])
            else:
                raise ValidationError(f"split.folds: no fold {f!r}; folds are {names} (or positions 0 to "
                                      f"{len(splits) - 1})")
        splits = picked
    plans = []
    for k, sp in enumerate(splits):
        check_split(sp, ds)
        train_idx, val_idx = sp.train, np.array([], dtype=np.int64)
        if s.validation == "test":
            val_idx = sp.test
        elif s.validation == "patients":
            rng = np.random.default_rng([config.seed, k])
            val_patients = _validation_patients(ds, sp.train, s.validation_fraction, rng, sp.name)
            in_val = np.isin(ds.patient_codes[sp.train], val_patients)
            train_idx, val_idx = sp.train[~in_val], sp.train[in_val]
        learnt = sorted(set(ds.targets[train_idx].tolist()))
        if len(learnt) < 2:
            raise SingleClassError(f"fold {sp.name!r}: every training clip has class {ds.classes[learnt[0]]!r}; "
                                   f"a model cannot learn from one class. Use more patients per class, grouped "
                                   f"k-fold, or split.validation: test")
        plans.append(FoldPlan(sp.name, train_idx, val_idx, sp.test))
    return plans


def _check_model(config: Config, ds: Any) -> nn.Module:
    from deepepil.ml.models import MODELS, build_model

    info = MODELS.get(config.model.name)
    if info is not None:
        if config.data.clip_frames < info.min_frames:
            raise ValidationError(f"model {info.name!r} needs clips of at least {info.min_frames} frames; "
                                  f"data.clip_frames is {config.data.clip_frames}")
        if min(config.data.size) < info.min_size:
            raise ValidationError(f"model {info.name!r} needs clips of at least {info.min_size} pixels a side; "
                                  f"data.size is {list(config.data.size)}")
    return build_model(config.model.name, ds.num_classes, ds.in_channels, config.model.pretrained_path,
                       head_weights=config.model.head_weights, **config.model.options)


# --- devices and precision ---------------------------------------------------------------------


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValidationError(f"train.device is {name!r} but no CUDA device is available; use auto or cpu")
    return device


def precision(device: torch.device, amp: str) -> Optional[torch.dtype]:
    """The autocast dtype for ``amp`` on ``device``: bf16 / fp16 on a GPU, None (fp32) on the CPU or with ``off``."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if amp == "bf16":
        raise ValidationError("train.amp is bf16 but this GPU does not support bfloat16; use fp16 or auto")
    return torch.float16


def _autocast(device: torch.device, dtype: Optional[torch.dtype]) -> Any:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def predict_probs(model: nn.Module, dataset: Any, *, batch_size: int = 8, device: Union[str, torch.device] = "cpu",
                  dtype: Optional[torch.dtype] = None, num_workers: int = 0,
                  loss_fn: Optional[Callable] = None) -> tuple[np.ndarray, float]:
    """Class probabilities of every clip of ``dataset`` (N, classes) and the mean loss (NaN without ``loss_fn``)."""
    device = torch.device(device)
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    probs, total, count = [], 0.0, 0
    with torch.no_grad():
        for clips, targets in loader:
            clips = clips.to(device, non_blocking=True)
            with _autocast(device, dtype):
                logits = model(clips)
            logits = logits.float()
            if loss_fn is not None:
                total += float(loss_fn(logits, targets.to(device))) * len(clips)
                count += len(clips)
            probs.append(torch.softmax(logits, 1).cpu().numpy())
    out = np.concatenate(probs) if probs else np.zeros((0, 0))
    return out, (total / count if count else float("nan"))


# --- one fold ------------------------------------------------------------------------------------


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _improved(metric: str, value: float, best: Optional[float], min_delta: float) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return best is None
    if best is None:
        return True
    return value < best - min_delta if metric == "loss" else value > best + min_delta


class _Context:
    """What every fold shares: the dataset, the configuration, the device, the tracker."""

    def __init__(self, config: Config, ds: Any, run_dir: Path, tracker: Any, progress: bool,
                 on_epoch_end: Optional[Callable[[dict[str, Any]], None]]) -> None:
        self.config, self.ds, self.run_dir, self.tracker = config, ds, run_dir, tracker
        self.device = _device(config.train.device)
        self.dtype = precision(self.device, config.train.amp)
        self.progress, self.on_epoch_end = progress, on_epoch_end
        self.augment = config.data.augment.build() if config.data.augment is not None else None

    def say(self, text: str) -> None:
        if self.progress:
            print(text, flush=True)


def _loss_fn(ctx: _Context, targets: np.ndarray) -> nn.Module:
    weights = None
    if ctx.config.train.class_weights == "balanced":
        counts = np.bincount(targets, minlength=ctx.ds.num_classes).astype(np.float64)
        w = np.where(counts > 0, len(targets) / (ctx.ds.num_classes * np.maximum(counts, 1)), 0.0)
        weights = torch.tensor(w, dtype=torch.float32, device=ctx.device)
    return nn.CrossEntropyLoss(weight=weights)


def _optimizer(ctx: _Context, model: nn.Module) -> torch.optim.Optimizer:
    t = ctx.config.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=0.9, weight_decay=t.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def _run_fold(ctx: _Context, plan: FoldPlan, index: int, epochs: int) -> dict[str, Any]:
    """Train one fold (resuming from its checkpoint); return its outcome (history, best epoch, test predictions)."""
    from deepepil.ml.models import build_model

    config, ds, t = ctx.config, ctx.ds, ctx.config.train
    done_file = ctx.run_dir / "folds" / plan.key / "outcome.pt"
    if done_file.exists():
        return torch.load(done_file, map_location="cpu", weights_only=False)
    stats = ds.subset(plan.train).measure_stats() if config.data.measure_stats else None
    train_ds = ds.subset(plan.train, augment=ctx.augment, stats=stats)
    val_ds = ds.subset(plan.val, stats=stats) if len(plan.val) else None
    torch.manual_seed(_seed(config.seed, index, -1))
    model = build_model(config.model.name, ds.num_classes, ds.in_channels, config.model.pretrained_path,
                        head_weights=config.model.head_weights, **config.model.options).to(ctx.device)
    optimizer = _optimizer(ctx, model)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
                 if t.scheduler == "cosine" else None)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.dtype == torch.float16)
    loss_fn = _loss_fn(ctx, ds.targets[plan.train])
    eval_loss = nn.CrossEntropyLoss()
    stopping = t.early_stopping if val_ds is not None else None
    ckpt_path = ctx.run_dir / "checkpoints" / plan.key / "last.pt"
    state: dict[str, Any] = {"epoch": -1, "best": None, "best_epoch": None, "bad_epochs": 0, "best_state": None,
                             "history": [], "stopped": False}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=ctx.device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        state = ckpt["state"]
        ctx.say(f"[{plan.name}] resumed after epoch {state['epoch'] + 1}")
    epoch = state["epoch"] + 1
    while epoch < epochs and not state["stopped"]:
        started = time.perf_counter()
        torch.manual_seed(_seed(config.seed, index, epoch))
        generator = torch.Generator().manual_seed(_seed(config.seed, index, epoch, 1))
        # a last batch of one clip would break BatchNorm in training mode (features of 1x1x1 after the
        # deep layers of a small clip): drop it; the shuffle puts that clip in another batch next epoch
        loader = torch.utils.data.DataLoader(train_ds, batch_size=t.batch_size, shuffle=True, generator=generator,
                                             num_workers=t.num_workers, pin_memory=ctx.device.type == "cuda",
                                             persistent_workers=False,
                                             drop_last=len(train_ds) % t.batch_size == 1 and len(train_ds) > 1)
        model.train()
        total, count = 0.0, 0
        for clips, targets in loader:
            clips, targets = clips.to(ctx.device, non_blocking=True), targets.to(ctx.device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(ctx.device, ctx.dtype):
                logits = model(clips)
            loss = loss_fn(logits.float(), targets)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach()) * len(clips)
            count += len(clips)
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        row: dict[str, Any] = {"fold": plan.name, "epoch": epoch, "train_loss": total / max(count, 1), "lr": lr}
        if val_ds is not None:
            prob, val_loss = predict_probs(model, val_ds, batch_size=t.batch_size, device=ctx.device,
                                           dtype=ctx.dtype, loss_fn=eval_loss)
            scores = clip_metrics(ds.targets[plan.val], prob)
            row.update(val_loss=val_loss, **{f"val_{k}": v for k, v in scores.items() if k != "clips"})
        row["seconds"] = time.perf_counter() - started
        state["history"].append(row)
        if stopping is not None:
            key = "val_loss" if stopping.metric == "loss" else f"val_{stopping.metric}"
            if _improved(stopping.metric, row[key], state["best"], stopping.min_delta):
                state.update(best=row[key], best_epoch=epoch, bad_epochs=0, best_state=_state_dict_cpu(model))
            else:
                state["bad_epochs"] += 1
                state["stopped"] = state["bad_epochs"] >= stopping.patience
        state["epoch"] = epoch
        _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict() if scheduler is not None else None,
                      "scaler": scaler.state_dict(), "state": state, "config_digest": config.digest}, ckpt_path)
        ctx.tracker.log_metrics({f"{plan.name}/{k}": v for k, v in row.items()
                                 if k not in ("fold", "epoch") and isinstance(v, (int, float))}, step=epoch)
        ctx.say(f"[{plan.name}] epoch {epoch + 1}/{epochs}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in row.items() if k not in ("fold", "epoch", "seconds", "lr")
            and isinstance(v, float)) + f" ({row['seconds']:.1f} s)")
        if ctx.on_epoch_end is not None:
            ctx.on_epoch_end(dict(row, stopped=state["stopped"]))
        epoch += 1
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    outcome: dict[str, Any] = {"name": plan.name, "history": state["history"], "stats": stats,
                               "best_epoch": state["best_epoch"] if state["best_epoch"] is not None else epoch - 1,
                               "epochs_run": state["epoch"] + 1, "predictions": None, "model": _state_dict_cpu(model)}
    if len(plan.test):
        test_ds = ds.subset(plan.test, stats=stats)
        prob, _ = predict_probs(model, test_ds, batch_size=t.batch_size, device=ctx.device, dtype=ctx.dtype)
        table = ds.index.iloc[plan.test][["recording", "patient_code", "start_frame", "end_frame", "target",
                                          "target_index"]].reset_index().rename(columns={"index": "clip"})
        table.insert(0, "fold", plan.name)
        for c, cls in enumerate(ds.classes):
            table[prob_column(cls)] = prob[:, c]
        table["predicted"] = [ds.classes[i] for i in prob.argmax(1)]
        outcome["predictions"] = table
        scores = clip_metrics(table["target_index"].to_numpy(), prob)
        ctx.tracker.log_metrics({f"{plan.name}/test_{k}": v for k, v in scores.items()}, step=0)
    _save_atomic(outcome, done_file)
    if config.tracking.log_checkpoints:
        ctx.tracker.log_artifact(ckpt_path, f"checkpoints/{plan.key}")
    return outcome


# --- the run ---------------------------------------------------------------------------------


class _NoTracking:
    run_id = None
    tracking_uri = None

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def _run_dir(config: Config, resume: Union[bool, str, os.PathLike]) -> tuple[Path, dict[str, Any]]:
    out = Path(config.output_dir)
    if resume and not isinstance(resume, bool):
        run_dir = Path(resume)
    elif resume:
        if config.run_name:
            run_dir = out / config.run_name
        else:
            candidates = sorted((p for p in out.glob("*/" + _STATE_FILE)), key=lambda p: p.stat().st_mtime)
            matching = [p.parent for p in candidates
                        if json.loads(p.read_text()).get("config_digest") == config.digest]
            if not matching:
                raise ResumeError(f"nothing to resume in {out}: no run of this configuration (give the run folder, "
                                  f"or run without resume)")
            run_dir = matching[-1]
    else:
        name = config.run_name or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = out / name
        if (run_dir / _STATE_FILE).exists():
            raise ResumeError(f"{run_dir} holds a run already: resume it (resume=True, `deepepil train --resume`), "
                              f"or choose another run_name")
        return run_dir, {}
    state_file = run_dir / _STATE_FILE
    if not state_file.exists():
        raise ResumeError(f"{run_dir} has no {_STATE_FILE}: not a deepepil training run")
    state = json.loads(state_file.read_text())
    if state.get("config_digest") != config.digest:
        old = load_config(json.loads((run_dir / "config.json").read_text())).flat()
        changed = sorted(k for k, v in config.flat().items() if old.get(k) != v and not k.startswith("tracking."))
        raise ResumeError(f"{run_dir} was trained with another configuration (changed: {', '.join(changed[:10])}); "
                          f"resume with the same configuration, or start a new run")
    return run_dir, state


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / (_STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, run_dir / _STATE_FILE)


def _inference_settings(config: Config, ds: Any, model: nn.Module, stats: Optional[Mapping[str, Any]],
                        snapshot: Any, run_id: Optional[str]) -> dict[str, Any]:
    return {
        "target": ds.target.name, "classes": list(ds.classes), "streams": list(ds.streams),
        "channels": list(ds.channels), "clip": dataclasses.asdict(ds.spec), "size": list(ds.size), "crop": ds.crop,
        "crop_margin": ds.crop_margin, "ir_gamma": ds.ir_gamma, "motion": ds.motion,
        "laterality_in_class": ds.laterality_in_class,
        "stats": {c: list(s) for c, s in zip(ds.channels, ds.subset(np.arange(len(ds)), stats=stats).stats)},
        "model": dict(model.config), "snapshot_hash": getattr(snapshot, "content_hash", None),
        "snapshot_name": getattr(snapshot, "name", None), "run_id": run_id, "config_digest": config.digest,
        "batch_size": config.train.batch_size,
    }


def train(config: Union[str, os.PathLike, Mapping[str, Any], Config], *,
          resume: Union[bool, str, os.PathLike] = False, progress: bool = True,
          on_epoch_end: Optional[Callable[[dict[str, Any]], None]] = None) -> RunResult:
    """Train and evaluate as ``config`` says; see the module docstring.

    Parameters
    ----------
    config : path, mapping or Config
        The training configuration (:func:`deepepil.ml.load_config`).
    resume : bool or path
        Continue an interrupted run: True finds ``<output_dir>/<run_name>`` (or the newest run of
        this configuration), a path names the run folder. Finished folds are kept, the current
        one continues from its last checkpoint, and the same MLflow run is continued.
    progress : bool
        Print one line per epoch.
    on_epoch_end : callable, optional
        Called with the epoch's metrics (a dict) after its checkpoint is written.

    Returns
    -------
    RunResult

    Raises
    ------
    ConfigError, EmptyLabelsError, SingleClassError, MissingStreamError, ClipTooLongError,
    CorruptWeightsError, WeightsMismatchError, ValidationError, NotFoundError
        Before anything is trained or tracked.
    ResumeError
        Nothing to resume, or the configuration changed.
    """
    from deepepil.ml.dataset import ClipDataset

    config = load_config(config)
    run_dir, state = _run_dir(config, resume)
    # 1. everything that can be wrong is found here, before training or tracking starts
    d = config.data
    snapshot = resolve_snapshot(d.snapshot, d.url, d.user)
    ds = ClipDataset.from_database(snapshot, d.url, user=d.user, **d.dataset_options())
    plans = plan_folds(ds, config)
    probe = _check_model(config, ds)
    ctx_device = _device(config.train.device)
    precision(ctx_device, config.train.amp)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config.to_yaml())
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    tracker: Any = _NoTracking()
    if config.tracking.enabled:
        from deepepil.ml.tracking import Tracker

        tracker = Tracker(config.tracking.uri, config.experiment, config.tracking.artifact_root)
    state.update(config_digest=config.digest, status="running")
    resumed = state.get("run_id")
    state["run_id"] = tracker.start(run_name=run_dir.name, run_id=resumed) if config.tracking.enabled else None
    _write_state(run_dir, state)
    ctx = _Context(config, ds, run_dir, tracker, progress, on_epoch_end)
    status = "FAILED"
    try:
        if not resumed:
            _log_start(ctx, snapshot, probe)
        outcomes = [_run_fold(ctx, plan, k, config.train.epochs) for k, plan in enumerate(plans)]
        evaluation = _evaluate(ctx, outcomes) if outcomes else None
        model, registered, inference = None, None, {}
        if config.train.final_model or not plans:
            model, registered, inference, final = _final(ctx, outcomes, snapshot, state)
            outcomes.append(final)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        state["status"] = {"FINISHED": "finished", "KILLED": "interrupted"}.get(status, "failed")
        _write_state(run_dir, state)
        tracker.end(status)
    history = pd.DataFrame([row for o in outcomes for row in o["history"]])
    epochs = pd.DataFrame([{"fold": o["name"], "epochs_run": o["epochs_run"], "best_epoch": o["best_epoch"]}
                           for o in outcomes])
    return RunResult(config=config, run_dir=run_dir, classes=list(ds.classes), evaluation=evaluation,
                     history=history, epochs=epochs, model=model, run_id=state["run_id"],
                     tracking_uri=getattr(tracker, "tracking_uri", None), registered=registered, inference=inference)


def _log_start(ctx: _Context, snapshot: Any, probe: nn.Module) -> None:
    from deepepil.ml.models import count_parameters

    ds, tracker = ctx.ds, ctx.tracker
    params = dict(ctx.config.flat())
    params.update({"dataset.fingerprint": ds.fingerprint, "dataset.clips": len(ds),
                   "dataset.patients": int(ds.index["patient_code"].nunique()), "dataset.classes": list(ds.classes),
                   "model.parameters": count_parameters(probe), "train.device_used": str(ctx.device),
                   "train.precision": str(ctx.dtype).replace("torch.", "") if ctx.dtype else "float32"})
    tracker.log_params(params)
    tracker.log_snapshot(snapshot, extra_tags={"dataset_fingerprint": ds.fingerprint})
    tracker.log_artifact(ctx.run_dir / "config.yaml")
    data_dir = ctx.run_dir / "data"
    data_dir.mkdir(exist_ok=True)
    ds.index.to_csv(data_dir / "clip_index.csv", index=False)
    ds.class_counts().to_csv(data_dir / "class_counts.csv")
    (data_dir / "dataset_config.json").write_text(json.dumps(ds.config(), indent=2, default=str))
    tracker.log_artifacts(data_dir, "data")


def _evaluate(ctx: _Context, outcomes: list[dict[str, Any]]) -> Evaluation:
    predictions = pd.concat([o["predictions"] for o in outcomes if o["predictions"] is not None], ignore_index=True)
    evaluation = evaluate(predictions, ctx.ds.classes)
    evaluation.save(ctx.run_dir / "evaluation")
    history = pd.DataFrame([row for o in outcomes for row in o["history"]])
    history.to_csv(ctx.run_dir / "evaluation" / "history.csv", index=False)
    ctx.tracker.log_metrics({f"cv/{k}": float(v) for k, v in evaluation.overall.items()}, step=0)
    ctx.tracker.log_artifacts(ctx.run_dir / "evaluation", "evaluation")
    o = evaluation.overall
    ctx.say(f"cross-validation ({len(outcomes)} folds, {int(o['clips'])} test clips): balanced accuracy "
            f"{o['balanced_accuracy']:.3f}, F1 {o['f1_macro']:.3f}, ROC AUC {o['roc_auc']:.3f}")
    return evaluation


def _final(ctx: _Context, outcomes: list[dict[str, Any]], snapshot: Any,
           state: dict[str, Any]) -> tuple[nn.Module, Any, dict[str, Any], dict[str, Any]]:
    from deepepil.ml.models import build_model
    from deepepil.ml.tracking import ModelRef

    config, ds = ctx.config, ctx.ds
    epochs = config.train.epochs
    if outcomes and config.train.early_stopping is not None:
        epochs = max(1, int(round(float(np.median([o["best_epoch"] + 1 for o in outcomes])))))
    plan = FoldPlan(_FINAL, np.arange(len(ds)), np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    outcome = _run_fold(ctx, plan, len(outcomes) + 1000, epochs)
    model = build_model(config.model.name, ds.num_classes, ds.in_channels, **config.model.options)
    model.load_state_dict(outcome["model"])
    model.eval()
    inference = _inference_settings(config, ds, model, outcome["stats"], snapshot, state.get("run_id"))
    registered = None
    if state.get("registered"):
        registered = ModelRef(**state["registered"])
    elif config.tracking.enabled:
        registered = ctx.tracker.log_model(model, inference, register=config.tracking.register,
                                           alias=config.tracking.alias)
        if registered is not None:
            state["registered"] = dataclasses.asdict(registered)
            _write_state(ctx.run_dir, state)
            ctx.say(f"registered {registered.label}" + (f" as @{registered.alias}" if registered.alias else ""))
    torch.save({"model": outcome["model"], "inference": inference}, ctx.run_dir / "final_model.pt")
    return model, registered, inference, outcome
