"""The training configuration: typed sections loaded from YAML, checked before anything starts.

>>> from deepepil.ml.config import load_config
>>> config = load_config("train.yaml")                       # doctest: +SKIP
>>> config = load_config({"data": {"snapshot": "train-v1"}, "model": {"name": "i3d"}})
>>> config.train.epochs, config.to_dict()

A file has up to six sections and three top-level keys::

    experiment: fle-vs-tle        # MLflow experiment (default "deepepil")
    run_name: r2p1d-ir-depth      # names the run folder and the MLflow run (default: a time stamp)
    output_dir: runs              # checkpoints, plots and tables go to <output_dir>/<run_name>
    seed: 0
    data:     {snapshot: train-v1, target: syndrome, streams: [ir, depth], clip_frames: 16, ...}
    model:    {name: r2plus1d, options: {width: 0.5}, pretrained_path: null}
    split:    {method: lopo, validation: patients}
    train:    {epochs: 30, batch_size: 8, lr: 0.001, early_stopping: {metric: balanced_accuracy, patience: 5}}
    tracking: {uri: null, register: fle-tle, alias: candidate}

A key that is not in the schema is an error naming it, the allowed keys and the closest
match; so is a value of the wrong type. ``docs/ml.md`` lists every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

from deepepil.errors import ConfigError

__all__ = [
    "DataConfig",
    "AugmentConfig",
    "ModelConfig",
    "SplitConfig",
    "EarlyStopping",
    "TrainConfig",
    "TrackingConfig",
    "Config",
    "load_config",
    "METRICS",
]

#: Metrics a validation set can be scored with (``early_stopping.metric``); loss is minimised, the rest maximised.
METRICS: tuple[str, ...] = ("balanced_accuracy", "f1_macro", "roc_auc", "accuracy", "loss")
_SPLITS = ("lopo", "kfold", "none")
_VALIDATION = ("patients", "test", "none")
_AMP = ("auto", "bf16", "fp16", "off")
_OPTIMIZERS = ("adamw", "sgd")
_SCHEDULERS = ("cosine", "none")
_CLASS_WEIGHTS = ("balanced", "none")


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{where} must be one of {', '.join(allowed)}; got {value!r}", section=where)


def _positive(value: Any, where: str, *, zero: bool = False) -> None:
    if value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{where} must be {'>= 0' if zero else '> 0'}, got {value!r}", section=where)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (:class:`deepepil.ml.Augment`); ``data.augment: null`` turns it off."""

    flip_p: float = 0.5
    crop_scale: tuple[float, float] = (0.85, 1.0)
    brightness: float = 0.1
    contrast: float = 0.1
    temporal_jitter_frames: int = 2

    def build(self) -> Any:
        from deepepil.ml.transforms import Augment

        return Augment(**dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What to train on: the label snapshot and how clips are cut (see :class:`deepepil.ml.ClipDataset`).

    ``snapshot`` is a snapshot's name (the newest of that name), id or content hash (8+ characters).
    ``url`` and ``user`` name the label database and whose view of it (defaults: the environment).
    """

    snapshot: Union[int, str]
    url: Optional[str] = None
    user: Optional[str] = None
    target: str = "syndrome"
    streams: tuple[str, ...] = ("ir",)
    clip_frames: int = 16
    fps: Optional[float] = 15.0
    stride_frames: Optional[int] = None
    window: str = "seizure"
    context_frames: int = 0
    size: tuple[int, int] = (112, 112)
    crop: Optional[str] = "patient"
    crop_margin: float = 0.1
    ir_gamma: float = 0.5
    motion: bool = False
    classes: Optional[tuple[str, ...]] = None
    laterality_in_class: bool = False
    measure_stats: bool = True
    augment: Optional[AugmentConfig] = AugmentConfig()

    def dataset_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~deepepil.ml.ClipDataset` (without augmentation and stats)."""
        return {
            "target": self.target, "streams": self.streams, "clip_frames": self.clip_frames, "fps": self.fps,
            "stride_frames": self.stride_frames, "window": self.window, "context_frames": self.context_frames,
            "size": self.size, "crop": self.crop, "crop_margin": self.crop_margin, "ir_gamma": self.ir_gamma,
            "motion": self.motion, "classes": self.classes, "laterality_in_class": self.laterality_in_class,
        }


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network: a name of :func:`deepepil.ml.build_model`, its options and optional local weights."""

    name: str = "r2plus1d"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    pretrained_path: Optional[str] = None
    head_weights: str = "auto"


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """How patients are split.

    ``method``: ``lopo`` (leave one patient out), ``kfold`` (grouped k-fold, ``n_splits``) or
    ``none`` (no evaluation: train on everything). ``folds`` runs only these folds (names or
    positions), for quick runs. ``validation``: where early stopping looks -- ``patients`` (a
    share ``validation_fraction`` of each fold's training patients, held out by patient),
    ``test`` (the fold's test part: optimistic, for tiny cohorts) or ``none``.
    """

    method: str = "lopo"
    n_splits: int = 5
    folds: Optional[tuple[Union[int, str], ...]] = None
    validation: str = "patients"
    validation_fraction: float = 0.25


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Stop a fold when ``metric`` on the validation part has not improved by ``min_delta`` for ``patience`` epochs."""

    metric: str = "balanced_accuracy"
    patience: int = 5
    min_delta: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation.

    ``amp``: mixed precision on a GPU (``auto`` = bf16 where supported, else fp16; CPU always
    trains in fp32). ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``.
    ``final_model``: after the folds, train once on every patient (for the number of epochs
    the folds stopped at, when early stopping) -- the model that is registered.
    """

    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    class_weights: str = "balanced"
    num_workers: int = 0
    amp: str = "auto"
    device: str = "auto"
    early_stopping: Optional[EarlyStopping] = EarlyStopping()
    final_model: bool = True


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """MLflow: where runs go, and the registered model.

    ``uri``: the tracking (and registry) store -- ``$MLFLOW_TRACKING_URI`` when unset, else
    ``sqlite:///<data folder>/mlflow/mlflow.db``. ``artifact_root``: the folder for new
    experiments' artifacts (default next to an SQLite store). ``register``: the registered
    model name for the final model (null: not registered), with ``alias``.
    """

    enabled: bool = True
    uri: Optional[str] = None
    artifact_root: Optional[str] = None
    register: Optional[str] = None
    alias: Optional[str] = "candidate"
    log_checkpoints: bool = True


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole training configuration; build it with :func:`load_config`."""

    data: DataConfig
    model: ModelConfig = ModelConfig()
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    tracking: TrackingConfig = TrackingConfig()
    experiment: str = "deepepil"
    run_name: Optional[str] = None
    output_dir: str = "runs"
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON- and YAML-serialisable form (what :func:`load_config` reads back)."""
        return _plain(dataclasses.asdict(self))

    def flat(self) -> dict[str, Any]:
        """``section.key -> value`` (nested mappings joined with dots), e.g. for MLflow parameters."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            else:
                out[prefix] = value

        walk("", self.to_dict())
        return out

    @property
    def digest(self) -> str:
        """sha256 of what determines the results (everything but tracking, output and run name)."""
        d = self.to_dict()
        for key in ("tracking", "output_dir", "run_name"):
            d.pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()

    def replace(self, **changes: Any) -> "Config":
        """A copy with ``section.key=value`` changes, e.g. ``config.replace(**{"train.epochs": 2})``."""
        d = self.to_dict()
        for dotted, value in changes.items():
            _set_dotted(d, dotted, value)
        return load_config(d)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = d
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[last] = value


def _check(c: Config) -> None:
    d, s, t = c.data, c.split, c.train
    for name, value in (("data.clip_frames", d.clip_frames), ("train.epochs", t.epochs),
                        ("train.batch_size", t.batch_size), ("split.n_splits", s.n_splits)):
        _positive(value, name)
    for name, value in (("train.lr", t.lr),):
        _positive(value, name)
    for name, value in (("train.weight_decay", t.weight_decay), ("train.num_workers", t.num_workers),
                        ("data.context_frames", d.context_frames)):
        _positive(value, name, zero=True)
    _choice(s.method, _SPLITS, "split.method")
    _choice(s.validation, _VALIDATION, "split.validation")
    _choice(t.amp, _AMP, "train.amp")
    _choice(t.optimizer, _OPTIMIZERS, "train.optimizer")
    _choice(t.scheduler, _SCHEDULERS, "train.scheduler")
    _choice(t.class_weights, _CLASS_WEIGHTS, "train.class_weights")
    if not 0 < s.validation_fraction < 1:
        raise ConfigError(f"split.validation_fraction must be between 0 and 1, got {s.validation_fraction}",
                          section="split")
    if not (t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:")):
        raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N; got {t.device!r}", section="train")
    if t.early_stopping is not None:
        _choice(t.early_stopping.metric, METRICS, "train.early_stopping.metric")
        _positive(t.early_stopping.patience, "train.early_stopping.patience")
        if s.validation == "none" or s.method == "none":
            raise ConfigError("train.early_stopping needs a validation part: set split.validation to 'patients' "
                              "or 'test' (and split.method to lopo or kfold), or early_stopping: null",
                              section="train")
    if c.tracking.register is not None and not c.tracking.enabled:
        raise ConfigError("tracking.register needs tracking.enabled: true (the registry is MLflow's)",
                          section="tracking")
    if c.tracking.register is not None and s.method != "none" and not t.final_model:
        raise ConfigError("tracking.register registers the final model: set train.final_model: true (or "
                          "split.method: none)", section="tracking")
    if not c.experiment or not isinstance(c.experiment, str):
        raise ConfigError(f"experiment must name an MLflow experiment, got {c.experiment!r}")
    if c.run_name is not None and (not c.run_name.strip() or any(ch in c.run_name for ch in "/\\")):
        raise ConfigError(f"run_name names a folder: no slashes, not empty; got {c.run_name!r}")


# --- loading: mappings -> typed dataclasses ----------------------------------------------------


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        names = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if args and args[-1] is ...:
            return f"a list (each {_describe(args[0])})"
        return f"a list of {len(args)} values (each {_describe(args[0])})"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is False and type(None) in args and any(dataclasses.is_dataclass(a) for a in args):
            value = None  # augment: false, early_stopping: false
        if value is None:
            if type(None) in args:
                return None
        else:
            errors = []
            for arg in args:
                if arg is type(None):
                    continue
                try:
                    return _convert(value, arg, where)
                except ConfigError as exc:
                    errors.append(exc)
            if len(errors) == 1:
                raise errors[0]
        raise ConfigError(f"{where} must be {_describe(tp)}, got {value!r}", section=where)
    if dataclasses.is_dataclass(tp):
        if value is True and all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
                                 for f in dataclasses.fields(tp)):
            return tp()
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping of {', '.join(f.name for f in dataclasses.fields(tp))}; "
                              f"got {value!r}", section=where)
        return _build(tp, value, where)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            if typing.get_args(tp)[-1] is ... and isinstance(value, str):
                value = [value]  # streams: ir  ->  [ir]
            else:
                raise ConfigError(f"{where} must be {_describe(tp)}, got {value!r}", section=where)
        args = typing.get_args(tp)
        if args and args[-1] is ...:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} must be {_describe(tp)}, got {value!r}", section=where)
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}", section=where)
        return {str(k): v for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ConfigError(f"{where} must be {_describe(tp)}, got {value!r}", section=where)


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [str(k) for k in values if k not in fields]
    if unknown:
        hints_text = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(fields), n=1)
            if close:
                hints_text.append(f"{key!r} -> did you mean {close[0]!r}?")
        place = f"section {where!r}" if where else "the top level"
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)} in {place} of the "
            f"training configuration; allowed keys there: {', '.join(fields)}"
            + (f" ({'; '.join(hints_text)})" if hints_text else ""),
            section=where, unknown=unknown, allowed=list(fields))
    missing = [name for name, f in fields.items() if name not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        place = f"section {where!r}" if where else "the top level"
        raise ConfigError(f"{place} of the training configuration needs {', '.join(missing)}"
                          + (" (the label snapshot to train on: its name, id or content hash)"
                             if missing == ["snapshot"] else ""), section=where, allowed=list(fields))
    kwargs = {name: _convert(value, hints[name], f"{where}.{name}" if where else name)
              for name, value in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # a value a section's own check refuses (e.g. Augment ranges)
        raise ConfigError(f"{where or 'configuration'}: {exc}", section=where) from None


def load_config(source: Union[str, os.PathLike, Mapping[str, Any], Config]) -> Config:
    """Read and check a training configuration.

    Parameters
    ----------
    source : path, mapping or Config
        A YAML (or JSON) file, or the same content as a mapping.

    Raises
    ------
    ConfigError
        Unknown keys (named, with the allowed keys), missing ones, values of the wrong type
        or out of range.
    FileNotFoundError
        No such file.
    """
    if isinstance(source, Config):
        return source
    if isinstance(source, (str, os.PathLike)):
        import yaml

        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no training configuration at {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path} must hold a mapping (data:, model:, train:, ...), got {type(data).__name__}")
        try:
            return load_config(data)
        except ConfigError as exc:
            raise type(exc)(f"{path}: {exc}", section=exc.section, unknown=exc.unknown, allowed=exc.allowed) \
                from None
    if not isinstance(source, Mapping):
        raise ConfigError(f"a training configuration is a YAML file or a mapping, got {type(source).__name__}")
    config = _build(Config, source, "")
    _check_augment(config)
    return config


def _check_augment(config: Config) -> None:
    if config.data.augment is not None:
        try:
            config.data.augment.build()
        except Exception as exc:
            raise ConfigError(f"data.augment: {exc}", section="data.augment") from None
