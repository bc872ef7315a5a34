"""Inference: sliding-window predictions of a registered model become suggestions in the label database.

>>> from deepepil import ml
>>> p = ml.predict(model="moi-left-arm@production", recording_id=7, user="dan")    # doctest: +SKIP
>>> p.windows        # one row per window: start_frame, end_frame, prob:<class> ...
>>> p.suggestions    # what was published: region, label, start/end frame, score (and its id)
>>> ml.predict_many("moi-left-arm@production", [7, 8, 9], user="dan")            # on Dask

The model's training settings travel with it (MLflow model metadata): the same streams, clip
length and frame rate, crop and normalization are used, and windows are laid out with the
stride the model was trained with (default half a clip's span) from the first frame to the
last (the last window ends at the recording's end). A model of target ``moi:<region>`` gives
suggestions for that region: for every class but ``none``, consecutive windows whose
probability reaches ``threshold`` merge into one suggestion spanning them, with the highest
of their probabilities as its score and ``NAME:VERSION`` as its model version. Publishing is
idempotent: a suggestion the same model version made already is not added again.

With ``explain_dir`` (``deepepil predict --explain DIR``), every newly published suggestion gets
a Grad-CAM explanation (:class:`~deepepil.ml.explain.Explanation`) of the window of its run where
its class is most probable, saved as
``<explain_dir>/<model name>-v<version>/rec<recording id>/<start_frame>-<end_frame>-<class>.npz``
(the class with spaces, slashes and parentheses made safe) and recorded as the suggestion's
``explanation_uri`` (the file's absolute path), which the labeling app draws over IR and depth.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from deepepil.errors import AccessDeniedError, ExplanationFileError, ValidationError
from deepepil.ml.metrics import prob_column

__all__ = ["Prediction", "predict", "predict_many", "window_starts", "merge_windows", "explanation_folder",
           "explanation_filename", "safe_name"]

_SIDE = re.compile(r"^(?P<label>.+?) \((?P<side>[^()]+)\)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: suggestion.explanation_uri holds at most this many characters (the column's size).
_URI_CHARS = 1000


@dataclasses.dataclass
class Prediction:
    """What :func:`predict` did for one recording."""

    recording_id: int
    model_version: str
    windows: pd.DataFrame
    suggestions: pd.DataFrame
    added: int = 0
    existing: int = 0

    def __repr__(self) -> str:
        return (f"Prediction(recording {self.recording_id}, model {self.model_version}: {len(self.windows)} windows, "
                f"{len(self.suggestions)} suggestions, {self.added} added, {self.existing} there already)")


def window_starts(num_frames: int, span_frames: int, stride_frames: int) -> np.ndarray:
    """First frames of windows of ``span_frames`` every ``stride_frames``; the last one ends at ``num_frames``."""
    if span_frames > num_frames:
        return np.array([], dtype=np.int64)
    starts = list(range(0, num_frames - span_frames + 1, max(1, stride_frames)))
    if starts[-1] != num_frames - span_frames:
        starts.append(num_frames - span_frames)
    return np.asarray(starts, dtype=np.int64)


def merge_windows(windows: pd.DataFrame, classes: Sequence[str], threshold: float = 0.5,
                  background: str = "none") -> pd.DataFrame:
    """Runs of consecutive windows whose probability of a class reaches ``threshold``, one row per run.

    Parameters
    ----------
    windows : DataFrame
        ``start_frame``, ``end_frame`` and a :func:`~deepepil.ml.metrics.prob_column` per class, in
        window order.
    classes : sequence of str
        The model's classes; ``background`` is never suggested.

    Returns
    -------
    DataFrame
        ``class``, ``start_frame`` (first window's), ``end_frame`` (last window's), ``score`` (the
        run's highest probability) and ``windows`` (how many).
    """
    if not 0 <= threshold <= 1:
        raise ValidationError(f"threshold must be from 0 to 1, got {threshold}")
    rows = []
    starts = windows["start_frame"].to_numpy(np.int64)
    ends = windows["end_frame"].to_numpy(np.int64)
    for cls in classes:
        if cls == background:
            continue
        prob = windows[prob_column(cls)].to_numpy(np.float64)
        above = prob >= threshold
        k = 0
        while k < len(above):
            if not above[k]:
                k += 1
                continue
            j = k
            while j + 1 < len(above) and above[j + 1] and starts[j + 1] <= ends[j]:  # neighbours that touch
                j += 1
            rows.append({"class": cls, "start_frame": int(starts[k]), "end_frame": int(ends[j]),
                         "score": float(prob[k:j + 1].max()), "windows": j - k + 1})
            k = j + 1
    return pd.DataFrame(rows, columns=["class", "start_frame", "end_frame", "score", "windows"])


@functools.lru_cache(maxsize=4)
def _loaded(label: str, tracking_uri: Optional[str], device: str) -> tuple[Any, dict[str, Any], Any]:
    from deepepil.ml.tracking import load_registered

    model, meta, ref = load_registered(label, tracking_uri, map_location=device)
    return model.to(device), meta, ref


def _device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def safe_name(text: str) -> str:
    """``text`` as a file name part: runs of anything but letters, digits, ``.``, ``_`` and ``-`` become ``-``."""
    return _UNSAFE.sub("-", str(text)).strip("-.") or "unnamed"


def explanation_folder(explain_dir: Union[str, os.PathLike], model_name: str, model_version: str,
                       recording_id: int) -> Path:
    """Where :func:`predict` saves a recording's explanations: ``<explain_dir>/<name>-v<version>/rec<id>``, absolute."""
    root = Path(explain_dir).expanduser().resolve()
    return root / f"{safe_name(model_name)}-v{model_version}" / f"rec{int(recording_id)}"


def explanation_filename(start_frame: int, end_frame: int, class_name: str) -> str:
    """``<start_frame>-<end_frame>-<class>.npz``, the class made safe (``"clonic (left)"`` -> ``clonic-left``)."""
    return f"{int(start_frame)}-{int(end_frame)}-{safe_name(class_name)}.npz"


def _not_explainable(label: str, arch: str) -> ValidationError:
    from deepepil.ml.explain import GRAD_CAM_MODELS

    return ValidationError(f"explanations need a 3D model ({' or '.join(GRAD_CAM_MODELS)}): Grad-CAM explains a "
                           f"feature map over time and space, and model {label} is a {arch!r}. Predict without "
                           f"explain_dir (--explain), or register a 3D model")


def _check_explainable(net: Any, settings: dict[str, Any], label: str) -> None:
    from deepepil.ml.explain import supports_grad_cam

    if not supports_grad_cam(net):
        raise _not_explainable(label, (settings.get("model") or {}).get("name") or type(net).__name__)


def _writable_folder(folder: Path, longest_name: int = 0) -> None:
    """Create ``folder`` and write a probe file in it; a clear error naming it when that fails."""
    if len(str(folder)) + 1 + longest_name > _URI_CHARS:
        raise ExplanationFileError(f"explanation folder {folder} is too long: the suggestions store the path of "
                                   f"each explanation file in at most {_URI_CHARS} characters; use a shorter folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ExplanationFileError(f"cannot write explanations to the folder {folder}: "
                                   f"{exc.strerror or exc}. Give explain_dir (--explain) a folder you can write "
                                   f"and the clinicians' servers can read, e.g. the hub's shared team folder"
                                   ) from None


def predict(model: Union[str, Any], recording_id: int, url: Optional[str] = None, *, user: Optional[str] = None,
            tracking_uri: Optional[str] = None, threshold: float = 0.5, publish: bool = True,
            batch_size: Optional[int] = None, device: str = "auto",
            explain_dir: Optional[Union[str, os.PathLike]] = None) -> Prediction:
    """Run a registered model over a recording and publish its suggestions.

    Parameters
    ----------
    model : str or ModelRef
        ``"NAME@ALIAS"`` (e.g. ``"moi-i3d@production"``), ``"NAME:VERSION"`` or ``"NAME"`` (newest).
    recording_id : int
        The recording in the label database.
    url, user : str, optional
        Label database and the user who publishes (a data scientist or an admin).
    tracking_uri : str, optional
        The MLflow registry (default ``$MLFLOW_TRACKING_URI``, else the local SQLite store).
    threshold : float
        Probability a window needs for its class to be suggested.
    publish : bool
        Write the suggestions to the database (False: only compute them).
    batch_size : int, optional
        Windows per forward pass (default: the training batch size).
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda``.
    explain_dir : str or path, optional
        Save a Grad-CAM explanation of every newly published suggestion under this folder
        (see the module docstring) and store its path with the suggestion. It must be readable
        by the clinicians' servers (e.g. the hub's shared team folder). With ``publish=False``
        every suggestion computed is explained. Needs a 3D model (``i3d``, ``r2plus1d``).

    Returns
    -------
    Prediction
        ``suggestions`` has ``explanation_uri`` (None where there is none).

    Raises
    ------
    ModelNotFoundError
        No such registered model or alias (the message lists the registered ones).
    MissingStreamError
        The recording lacks a stream the model reads.
    ValidationError
        A model of another target (``syndrome``) asked to publish suggestions; a bad threshold;
        ``explain_dir`` with a model Grad-CAM cannot explain (``cnn2d``). Raised before anything runs.
    ExplanationFileError
        ``explain_dir`` cannot be created or written (the message names it); raised before any
        window is computed.
    """
    from deepepil.labels._validate import SUGGESTION_WRITERS
    from deepepil.labels.service import connect
    from deepepil.ml.clips import ClipSpec
    from deepepil.ml.dataset import ClipDataset
    from deepepil.ml.tracking import ModelRef, resolve_ref
    from deepepil.ml.training import predict_probs

    if not 0 <= threshold <= 1:
        raise ValidationError(f"threshold must be from 0 to 1, got {threshold}")
    device = _device(device)
    ref = model if isinstance(model, ModelRef) and model.version else resolve_ref(model, tracking_uri)
    net, settings, ref = _loaded(ref.label, tracking_uri, device)
    target = settings["target"]
    if publish and not target.startswith("moi:"):
        raise ValidationError(f"model {ref.label} predicts {target!r} (a class per recording); suggestions are "
                              f"movements of interest and come from 'moi:<region>' models. Use publish=False to "
                              f"get its window probabilities")
    if explain_dir is not None:
        _check_explainable(net, settings, ref.label)
    classes = list(settings["classes"])
    with connect(url, user=user) as store:
        rec = store.recording(recording_id)
        if publish and store.user.role not in SUGGESTION_WRITERS:
            raise AccessDeniedError(f"{store.user.username} is a {store.user.role}: suggestions are published by "
                                    f"{' or '.join(SUGGESTION_WRITERS)}s; run predict as one (user=...), or "
                                    f"publish=False")
        folder = None
        if explain_dir is not None:
            folder = explanation_folder(explain_dir, ref.name, str(ref.version), rec.id)
            longest = max(len(explanation_filename(rec.num_frames, rec.num_frames, c)) for c in classes)
            _writable_folder(folder, longest)
        spec = ClipSpec(**settings["clip"])
        span = spec.span_frames(rec.fps)
        starts = window_starts(rec.num_frames, span, spec.stride(rec.fps))
        if not len(starts):
            raise ValidationError(f"{rec.describe()}: shorter than one window of the model ({span} frames)")
        ds = ClipDataset.for_windows(settings, rec.storage_uri, rec.name, starts)
        prob, _ = predict_probs(net, ds, batch_size=batch_size or int(settings.get("batch_size", 8)), device=device)
        windows = ds.index[["start_frame", "end_frame"]].copy()
        for c, cls in enumerate(classes):
            windows[prob_column(cls)] = prob[:, c]
        windows["predicted"] = [classes[i] for i in prob.argmax(1)]
        merged = merge_windows(windows, classes, threshold)
        suggestions = _as_suggestions(merged, target, bool(settings.get("laterality_in_class")))
        known = _known(store, rec.id, ref.label) if publish and len(suggestions) else {}
        if folder is not None:
            suggestions["explanation_uri"] = pd.Series([
                None if _key(s) in known else _explain(net, ds, windows, classes, cls, s, folder)
                for cls, s in zip(merged["class"], suggestions.itertuples(index=False))
            ], index=suggestions.index, dtype=object)
        added = existing = 0
        if publish and len(suggestions):
            suggestions, added, existing = _publish(store, rec.id, suggestions, ref.label)
    return Prediction(int(rec.id), ref.label, windows, suggestions, added, existing)


def _explain(net: Any, ds: Any, windows: pd.DataFrame, classes: Sequence[str], cls: str, suggestion: Any,
             folder: Path) -> str:
    """Grad-CAM of the suggestion's run at its most probable window of ``cls``, saved in ``folder``; its path."""
    from deepepil.ml.explain import explain_clip

    starts = windows["start_frame"].to_numpy(np.int64)
    ends = windows["end_frame"].to_numpy(np.int64)
    run = np.flatnonzero((starts >= suggestion.start_frame) & (ends <= suggestion.end_frame))
    best = int(run[np.argmax(windows[prob_column(cls)].to_numpy(np.float64)[run])])
    explanation = explain_clip(net, ds, best, class_index=list(classes).index(cls))
    path = explanation.save(folder / explanation_filename(suggestion.start_frame, suggestion.end_frame, cls))
    return str(path)


def _as_suggestions(merged: pd.DataFrame, target: str, laterality_in_class: bool) -> pd.DataFrame:
    region = target[4:] if target.startswith("moi:") else None
    rows = []
    for r in merged.itertuples(index=False):
        label, side = r[0], None
        m = _SIDE.match(label) if laterality_in_class else None
        if m:
            label, side = m.group("label"), m.group("side")
        rows.append({"region": region, "label": label, "laterality": side, "start_frame": r.start_frame,
                     "end_frame": r.end_frame, "score": r.score, "windows": r.windows})
    out = pd.DataFrame(rows, columns=["region", "label", "laterality", "start_frame", "end_frame", "score",
                                      "windows"])
    # None, not NaN, where there is none (pandas' string dtype would turn a mix of None and text into NaN)
    out["laterality"] = pd.Series([r["laterality"] for r in rows], index=out.index, dtype=object)
    out["explanation_uri"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    return out


def _key(s: Any) -> tuple[Any, ...]:
    laterality = s.laterality if isinstance(s.laterality, str) else None
    return (s.region, s.label, laterality, int(s.start_frame), int(s.end_frame))


def _known(store: Any, recording_id: int, model_version: str) -> dict[tuple[Any, ...], tuple[int, Optional[str]]]:
    """The model version's live suggestions for the recording: key -> (id, explanation_uri)."""
    have = store.suggestions(recording_id, model_version=model_version)
    return {_key(r): (int(r.id), r.explanation_uri if isinstance(r.explanation_uri, str) else None)
            for r in have.itertuples(index=False)}


def _publish(store: Any, recording_id: int, suggestions: pd.DataFrame, model_version: str) -> tuple[pd.DataFrame,
                                                                                                      int, int]:
    ids, uris, added = [], [], 0
    with store.batch():
        known = _known(store, recording_id, model_version)  # again, inside the transaction
        for s in suggestions.itertuples(index=False):
            key = _key(s)
            if key in known:
                ids.append(known[key][0])
                uris.append(known[key][1])
                continue
            row = store.add_suggestion(recording_id, s.region, s.label, int(s.start_frame), int(s.end_frame),
                                       float(s.score), model_version, laterality=key[2],
                                       explanation_uri=s.explanation_uri if isinstance(s.explanation_uri, str)
                                       else None)
            ids.append(int(row.id))
            uris.append(row.explanation_uri)
            added += 1
    out = suggestions.copy()
    out.insert(0, "id", ids)
    out["explanation_uri"] = pd.Series(uris, index=out.index, dtype=object)
    return out, added, len(ids) - added


# --- many recordings on Dask ------------------------------------------------------------------


def _predict_task(recording_id: int, label: str, url: Optional[str], user: Optional[str],
                  tracking_uri: Optional[str], threshold: float, device: str,
                  explain_dir: Optional[str] = None) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("DEEPEPIL_TORCH_THREADS", "1"))))
    p = predict(label, recording_id, url, user=user, tracking_uri=tracking_uri, threshold=threshold, device=device,
                explain_dir=explain_dir)
    explained = int(p.suggestions["explanation_uri"].map(lambda u: isinstance(u, str)).sum())
    return {"recording_id": p.recording_id, "model_version": p.model_version, "windows": len(p.windows),
            "suggestions": len(p.suggestions), "added": p.added, "existing": p.existing, "explained": explained}


def predict_many(model: str, recording_ids: Sequence[int], url: Optional[str] = None, *, user: Optional[str] = None,
                 tracking_uri: Optional[str] = None, threshold: float = 0.5, scheduler_address: Optional[str] = None,
                 n_workers: Optional[int] = None, device: str = "auto", progress: bool = True,
                 explain_dir: Optional[Union[str, os.PathLike]] = None) -> pd.DataFrame:
    """:func:`predict` over many recordings on Dask distributed; one row per recording.

    The alias is resolved once, here, so every recording gets the same model version even if
    the alias moves meanwhile. ``scheduler_address`` (``tcp://host:8786``) uses a running
    cluster -- its workers must reach the label database, the registry, the recording stores
    and ``explain_dir``; default a :class:`distributed.LocalCluster` of ``n_workers`` processes.
    With ``explain_dir`` (see :func:`predict`) the model and the folder are checked here, before
    any recording is sent out; the ``explained`` column counts the suggestions with an explanation.

    Raises
    ------
    DeepEpilError
        After every recording was tried, when any failed (each failure named).
    """
    from deepepil.batch import run_on_dask
    from deepepil.ml.tracking import default_tracking_uri, registered_settings, resolve_ref

    tracking_uri = tracking_uri or default_tracking_uri()
    ids = [int(r) for r in recording_ids]
    if not ids:
        raise ValidationError("predict_many needs at least one recording id")
    folder = None
    if explain_dir is None:
        label = resolve_ref(model, tracking_uri).label
    else:
        from deepepil.ml.explain import GRAD_CAM_MODELS
        from deepepil.ml.models import MODELS

        settings, ref = registered_settings(model, tracking_uri)
        label = ref.label
        arch = (settings.get("model") or {}).get("name")
        if arch in MODELS and arch not in GRAD_CAM_MODELS:  # other architectures: predict checks the network
            raise _not_explainable(label, arch)
        folder = Path(explain_dir).expanduser().resolve()
        _writable_folder(folder)
    rows = run_on_dask(_predict_task, ids, label, url, user, tracking_uri, threshold, device,
                       None if folder is None else str(folder), what="predict",
                       label=lambda rid: f"recording {rid}", scheduler_address=scheduler_address,
                       n_workers=n_workers, progress=progress)
    return pd.DataFrame(rows).sort_values("recording_id").reset_index(drop=True)
