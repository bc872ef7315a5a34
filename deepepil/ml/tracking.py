"""MLflow tracking and the model registry: where runs go, what each run records, registered models.

Every training run (:func:`deepepil.ml.train`) logs, through :class:`Tracker`:

* parameters: the flattened configuration (``data.clip_frames``, ``train.lr``, ...), the model's
  parameter count and the precision used;
* metrics per epoch and fold (``<fold>/train_loss``, ``<fold>/val_balanced_accuracy``), per fold
  on its test part (``<fold>/test_f1_macro``) and pooled (``cv/balanced_accuracy``);
* artifacts: the configuration, metric tables (CSV), plots (PNG), checkpoints, the clip index;
* the code version (tags ``deepepil.version``, ``mlflow.source.git.commit``, ``deepepil.git_dirty``)
  and the environment (tags for Python, torch, CUDA; ``environment/requirements.txt``, every
  installed distribution as ``pip freeze`` writes it);
* the label snapshot as a dataset input (name: the snapshot's; digest: the first 32 hex digits of
  its content hash, the most MLflow's registry stores; the full hash in the input's tags and the
  run tag ``deepepil.snapshot_hash``).

The final model is logged with :mod:`mlflow.pytorch` (its inference settings -- streams, clip
length, rate, stride, crop, normalization, classes -- in the model's ``metadata["deepepil"]``)
and registered with an alias (``candidate``; :func:`set_alias` moves ``production``).

Stores: ``sqlite:///PATH/mlflow.db`` for one person (the default, in the user data folder), the
project's PostgreSQL for a team (a database of its own, e.g. ``mlflow``: MLflow migrates its own
tables with Alembic, and two Alembic histories cannot share one schema with the label database).
Artifacts go to a folder (``artifact_root``). :func:`mlflow_server_command` starts the UI behind
the hub at ``/services/mlflow/``. MLflow's usage telemetry is switched off: nothing leaves the server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from deepepil.errors import ModelNotFoundError, ValidationError

if TYPE_CHECKING:
    import torch

__all__ = [
    "TRACKING_URI_ENV",
    "default_tracking_uri",
    "default_artifact_root",
    "code_version",
    "environment",
    "requirements_text",
    "Tracker",
    "ModelRef",
    "parse_model_ref",
    "resolve_ref",
    "load_registered",
    "registered_settings",
    "set_alias",
    "mlflow_server_command",
    "metric_key",
]

#: MLflow's own variable: the tracking store when a configuration names none.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_DIGEST_CHARS = 32  # MLflow stores dataset digests in a 36-character column
_PARAM_CHARS = 6000


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports from a clinic's server
    import mlflow

    return mlflow


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else ``sqlite:///<user data dir>/deepepil/mlflow/mlflow.db``."""
    if os.environ.get(TRACKING_URI_ENV):
        return os.environ[TRACKING_URI_ENV]
    from platformdirs import user_data_dir

    folder = Path(user_data_dir("deepepil", appauthor=False)) / "mlflow"
    return f"sqlite:///{folder / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Optional[Path]:
    return Path(uri.split("sqlite:///", 1)[1]) if uri.startswith("sqlite:///") else None


def default_artifact_root(tracking_uri: str) -> str:
    """Next to an SQLite store (``<folder>/artifacts``); else ``<user data dir>/deepepil/mlflow/artifacts``."""
    path = _sqlite_path(tracking_uri)
    if path is not None:
        return str(path.parent / "artifacts")
    from platformdirs import user_data_dir

    return str(Path(user_data_dir("deepepil", appauthor=False)) / "mlflow" / "artifacts")


def _safe_uri(uri: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", uri)


def metric_key(*parts: str) -> str:
    """An MLflow metric or parameter key from parts joined by ``/`` (characters MLflow refuses become ``_``)."""
    return "/".join(re.sub(r"[^0-9A-Za-z_\-. :/]", "_", str(p)) for p in parts if p != "")


# --- what a run records about the code and the environment ----------------------------------


def code_version() -> dict[str, Any]:
    """``deepepil_version``, and the ``git_commit`` and ``git_dirty`` of a source checkout (None elsewhere)."""
    from deepepil import __version__

    here = Path(__file__).resolve().parent
    info: dict[str, Any] = {"deepepil_version": __version__, "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True, timeout=10)
            info["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def environment() -> dict[str, Any]:
    """Python, platform, torch, CUDA and GPU of this process."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    for name in ("mlflow", "numpy"):
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    return info


def requirements_text() -> str:
    """Every installed distribution as ``name==version`` lines, sorted (what ``pip freeze`` prints)."""
    seen = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(seen[k] for k in sorted(seen)) + "\n"


# --- a run ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _using(tracking_uri: str) -> Iterator[Any]:
    """Point MLflow's module-level calls at ``tracking_uri`` for a while (then back)."""
    mlflow = _mlflow()
    previous = os.environ.get(TRACKING_URI_ENV)
    before = mlflow.get_tracking_uri() if previous is None else previous
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(before)


def _prepare_store(tracking_uri: str) -> None:
    path = _sqlite_path(tracking_uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


class Tracker:
    """One MLflow run: start (or resume), log, register, end.

    Parameters
    ----------
    tracking_uri : str, optional
        The tracking and registry store (default :func:`default_tracking_uri`).
    experiment : str
        Experiment name; created with its artifacts under ``artifact_root`` when new.
    artifact_root : str, optional
        Folder (or URI) for new experiments' artifacts (default :func:`default_artifact_root`; with a
        tracking server, ``http://...``, the server's own artifact store).
    """

    def __init__(self, tracking_uri: Optional[str] = None, experiment: str = "deepepil",
                 artifact_root: Optional[str] = None) -> None:
        mlflow = _mlflow()
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri or default_tracking_uri()
        _prepare_store(self.tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        self.experiment = experiment
        self.artifact_root: Optional[str] = None  # a tracking server stores artifacts where it was told to
        if artifact_root is not None or not self.tracking_uri.startswith(("http://", "https://")):
            root = artifact_root or default_artifact_root(self.tracking_uri)
            self.artifact_root = root if "://" in root else Path(root).resolve().as_uri()
        self.run_id: Optional[str] = None
        self._mlflow = mlflow
        self._context: Optional[contextlib.ExitStack] = None

    def experiment_id(self) -> str:
        """The experiment's id, creating it (artifacts in ``<artifact_root>/<experiment>``) when new."""
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise ValidationError(f"MLflow experiment {self.experiment!r} was deleted; restore it "
                                      f"(mlflow experiments restore) or choose another name")
            return found.experiment_id
        if self.artifact_root is None:
            return self.client.create_experiment(self.experiment)
        location = self.artifact_root.rstrip("/") + "/" + re.sub(r"[^0-9A-Za-z_.-]", "_", self.experiment)
        return self.client.create_experiment(self.experiment, artifact_location=location)

    def start(self, run_name: Optional[str] = None, run_id: Optional[str] = None,
              tags: Optional[Mapping[str, Any]] = None) -> str:
        """Start a run (or continue ``run_id``); log the code version and the environment. Returns the run id."""
        if run_id is not None:
            self.client.get_run(run_id)  # raises when it does not exist
            self.client.update_run(run_id, status="RUNNING")
        else:
            code, env = code_version(), environment()
            all_tags = {
                "deepepil.version": code["deepepil_version"],
                "deepepil.git_dirty": str(code["git_dirty"]),
                **{f"deepepil.env.{k}": str(v) for k, v in env.items()},
                **({"mlflow.source.git.commit": code["git_commit"]} if code["git_commit"] else {}),
                "mlflow.source.name": "deepepil.ml.train",
                **{k: str(v) for k, v in (tags or {}).items()},
            }
            run = self.client.create_run(self.experiment_id(), run_name=run_name, tags=all_tags)
            run_id = run.info.run_id
            self.run_id = run_id
            self.log_text(requirements_text(), "environment/requirements.txt")
            self.log_text(json.dumps({"code": code, "environment": env}, indent=2), "environment/environment.json")
        self.run_id = run_id
        return run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (values as strings, cut to MLflow's limit); a resumed run skips those it has."""
        from mlflow.entities import Param

        have = self.client.get_run(self.run_id).data.params
        items = [Param(metric_key(k), (json.dumps(v) if isinstance(v, (list, dict)) else str(v))[:_PARAM_CHARS])
                 for k, v in params.items()]
        items = [p for p in items if p.key not in have]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        """Log numeric metrics (NaN ones are skipped: MLflow cannot plot them)."""
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_key(k), float(v), now, step or 0) for k, v in metrics.items()
                 if v is not None and not (isinstance(v, float) and math.isnan(v))]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, path: Union[str, os.PathLike], artifact_path: Optional[str] = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: Union[str, os.PathLike], artifact_path: Optional[str] = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_snapshot(self, snapshot: Any, *, context: str = "training",
                     extra_tags: Optional[Mapping[str, str]] = None) -> None:
        """Record the label snapshot as the run's dataset input (its MOIs as the table, its hash as digest)."""
        import warnings

        mlflow = self._mlflow
        mois = getattr(snapshot, "mois", None)
        full_hash = getattr(snapshot, "content_hash", None)
        if mois is None or full_hash is None:
            raise ValidationError("log_snapshot needs a label snapshot (store.snapshot(...)): mois and content_hash")
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # MLflow hints about integer columns in the inferred schema
            warnings.simplefilter("ignore")
            dataset = mlflow.data.from_pandas(mois, name=str(snapshot.name), digest=full_hash[:_DIGEST_CHARS])
            entity = dataset._to_mlflow_entity()
        tags = {"mlflow.data.context": context, "snapshot_hash": full_hash, "snapshot_id": str(snapshot.id),
                "snapshot_name": str(snapshot.name), **(extra_tags or {})}
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(
            entity, tags=[InputTag(k, str(v)[:500]) for k, v in tags.items()])])
        self.client.set_tag(self.run_id, "deepepil.snapshot_hash", full_hash)

    def log_model(self, model: "torch.nn.Module", metadata: Mapping[str, Any], *,
                  register: Optional[str] = None, alias: Optional[str] = None) -> Optional["ModelRef"]:
        """Log ``model`` (``mlflow.pytorch``, pickled) under ``model``; register it as ``register`` with ``alias``.

        Returns the registered version (``None`` when not registered).
        """
        import torch

        from deepepil import __version__

        requirements = [f"torch=={torch.__version__.split('+')[0]}", f"deepepil=={__version__}"]
        with _using(self.tracking_uri) as mlflow, _quiet_mlflow():
            import mlflow.pytorch

            with mlflow.start_run(run_id=self.run_id, nested=mlflow.active_run() is not None):
                info = mlflow.pytorch.log_model(
                    model.cpu().eval(), name="model", registered_model_name=register, pip_requirements=requirements,
                    metadata={"deepepil": _plain(metadata)}, serialization_format="pickle",
                )
        if register is None:
            return None
        version = str(info.registered_model_version)
        self.client.set_model_version_tag(register, version, "run_id", self.run_id)
        snapshot_hash = metadata.get("snapshot_hash")
        if snapshot_hash:
            self.client.set_model_version_tag(register, version, "snapshot_hash", snapshot_hash)
        if alias:
            self.client.set_registered_model_alias(register, alias, version)
        return ModelRef(register, version=version, alias=alias)

    def end(self, status: str = "FINISHED") -> None:
        """End the run: ``FINISHED``, ``FAILED`` or ``KILLED`` (interrupted; resume continues it)."""
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    import logging
    import warnings

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the pickle-format caution and "registered model" chatter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


# --- the registry ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A registered model version: ``name``, ``version`` and the ``alias`` it was reached by."""

    name: str
    version: Optional[str] = None
    alias: Optional[str] = None

    @property
    def label(self) -> str:
        """``name:version``, what suggestions carry as ``model_version``."""
        return f"{self.name}:{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else self.label


def parse_model_ref(ref: str) -> ModelRef:
    """``"NAME@ALIAS"``, ``"NAME:VERSION"`` or ``"NAME"`` (its newest version)."""
    if not isinstance(ref, str) or not ref.strip():
        raise ValidationError(f"a model is named NAME@ALIAS (e.g. 'fle-tle@production'), NAME:VERSION or NAME; "
                              f"got {ref!r}")
    ref = ref.strip()
    if ref.startswith("models:/"):
        ref = ref[len("models:/"):].replace("/", ":", 1)
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        if not name or not alias:
            raise ValidationError(f"{ref!r}: give NAME@ALIAS, e.g. 'fle-tle@candidate'")
        return ModelRef(name, alias=alias)
    if ":" in ref:
        name, version = ref.rsplit(":", 1)
        if not version.isdigit():
            raise ValidationError(f"{ref!r}: a version is a number (NAME:3), or use an alias (NAME@production)")
        return ModelRef(name, version=version)
    return ModelRef(ref)


def _registered_listing(client: Any) -> str:
    try:
        models = client.search_registered_models()
    except Exception:  # the listing only decorates the message
        return ""
    if not models:
        return "; the registry has no models yet (train with tracking.register: NAME)"
    shown = []
    for m in models[:10]:
        aliases = ", ".join(f"@{a}" for a in sorted(m.aliases or {}))
        shown.append(m.name + (f" ({aliases})" if aliases else ""))
    return "; registered models: " + ", ".join(shown)


def resolve_ref(ref: Union[str, ModelRef], tracking_uri: Optional[str] = None) -> ModelRef:
    """The version a reference points to now (an alias or the newest version resolved)."""
    _mlflow()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    ref = parse_model_ref(ref) if isinstance(ref, str) else ref
    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        if ref.alias:
            mv = client.get_model_version_by_alias(ref.name, ref.alias)
        elif ref.version:
            mv = client.get_model_version(ref.name, ref.version)
        else:
            versions = client.search_model_versions(f"name = '{ref.name}'")
            if not versions:
                raise ModelNotFoundError(f"registered model {ref.name!r} has no versions{_registered_listing(client)}")
            mv = max(versions, key=lambda v: int(v.version))
    except MlflowException as exc:
        what = f"alias {ref.alias!r} of model {ref.name!r}" if ref.alias else f"model {ref}"
        raise ModelNotFoundError(f"no {what} in the MLflow registry at {_safe_uri(uri)} "
                                 f"({str(exc).splitlines()[0]}){_registered_listing(client)}") from None
    return ModelRef(ref.name, version=str(mv.version), alias=ref.alias)


def _metadata(resolved: ModelRef) -> dict[str, Any]:
    from mlflow.models import Model

    meta = (Model.load(resolved.uri).metadata or {}).get("deepepil")
    if not meta:
        raise ModelNotFoundError(f"model {resolved.label} was not logged by deepepil.ml.train (no inference "
                                 f"settings in its metadata); deepepil cannot cut clips for it")
    return meta


def registered_settings(ref: Union[str, ModelRef], tracking_uri: Optional[str] = None
                        ) -> tuple[dict[str, Any], ModelRef]:
    """A registered model's deepepil metadata (inference settings, ``model`` config) without loading its weights."""
    resolved = resolve_ref(ref, tracking_uri)
    with _using(tracking_uri or default_tracking_uri()), _quiet_mlflow():
        return _metadata(resolved), resolved


def load_registered(ref: Union[str, ModelRef], tracking_uri: Optional[str] = None, *,
                    map_location: Any = "cpu") -> tuple["torch.nn.Module", dict[str, Any], ModelRef]:
    """Load a registered model: ``(model in eval mode, its deepepil metadata, the resolved version)``."""
    resolved = resolve_ref(ref, tracking_uri)
    uri = tracking_uri or default_tracking_uri()
    with _using(uri) as mlflow, _quiet_mlflow():
        import mlflow.pytorch

        meta = _metadata(resolved)
        model = mlflow.pytorch.load_model(resolved.uri, map_location=map_location)
    return model.eval(), meta, resolved


def set_alias(name: str, alias: str, version: Union[int, str], tracking_uri: Optional[str] = None) -> ModelRef:
    """Point ``alias`` (e.g. ``production``) of registered model ``name`` at ``version``."""
    _mlflow()
    from mlflow import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    resolved = resolve_ref(ModelRef(name, version=str(version)), uri)
    client.set_registered_model_alias(name, alias, resolved.version)
    return ModelRef(name, version=resolved.version, alias=alias)


# --- the UI behind the hub --------------------------------------------------------------------


def mlflow_server_command(backend_uri: str, artifact_root: Union[str, os.PathLike], port: int = 5000,
                          static_prefix: str = "/services/mlflow", *, host: str = "127.0.0.1",
                          allowed_hosts: Optional[Sequence[str]] = None, workers: int = 1) -> list[str]:
    """The command line of an MLflow tracking server (UI and REST API) served under ``static_prefix``.

    Parameters
    ----------
    backend_uri : str
        The tracking store (``sqlite:///...`` or the ``mlflow`` PostgreSQL database).
    artifact_root : path or URI
        Where artifacts are stored; the server proxies uploads and downloads to it.
    port : int
        Port on ``host`` (the hub's proxy forwards ``/services/mlflow/`` there).
    static_prefix : str
        URL prefix of every route (UI, API, static files): ``/services/<service name>`` behind JupyterHub.
    host : str
        Interface to bind: keep 127.0.0.1 and let the hub's proxy be the way in.
    allowed_hosts : sequence of str, optional
        Host headers to accept besides localhost (the hub's public name, e.g. ``["hub.clinic.org"]``).
    workers : int
        Server worker processes.

    Returns
    -------
    list of str
        For ``subprocess`` or a JupyterHub service's ``command``.
    """
    if not static_prefix.startswith("/") or static_prefix.endswith("/") or static_prefix == "/":
        raise ValidationError(f"static_prefix must start with '/' and not end with one (e.g. '/services/mlflow'), "
                              f"got {static_prefix!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValidationError(f"port must be from 1 to 65535, got {port!r}")
    root = str(artifact_root)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--serve-artifacts", "--artifacts-destination", root if "://" in root else str(Path(root).resolve()),
        "--host", host, "--port", str(port), "--workers", str(int(workers)),
        "--static-prefix", static_prefix,
    ]
    if allowed_hosts:
        command += ["--allowed-hosts", ",".join(["localhost", "localhost:*", "127.0.0.1:*", *allowed_hosts])]
    return command
