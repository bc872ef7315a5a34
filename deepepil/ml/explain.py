"""Explanations: Grad-CAM over space and time for the 3D models, saved as overlays per clip.

>>> from deepepil import ml
>>> cam = ml.grad_cam(model, clip)                       # (T, H, W) in [0, 1], the clip's grid   # doctest: +SKIP
>>> table = ml.save_explanations(model, dataset, [0, 5, 9], "explanations/")
>>> table[["recording", "start_frame", "npz", "png"]]

Grad-CAM (Selvaraju et al. 2017) on the last feature map ``A`` of ``model.features`` (``(F, T',
H', W')`` for ``i3d`` and ``r2plus1d``): each feature map is weighted by the mean gradient of the
class score over it, the weighted sum is rectified, scaled to ``[0, 1]`` and upsampled
(trilinear) to the clip's frames and pixels. It says where *and when* the evidence for a class
lies.

Per clip, :func:`save_explanations` writes

* ``<stem>.npz``: ``cam`` (float16, ``(T, H, W)`` on the clip's grid), ``frames`` (the source
  frame index of every clip frame), ``box`` (``y0, y1, x0, x1``: the crop in the depth/IR
  image's pixels, so the app can place the overlay on the full frame), ``class_index``,
  ``class_name``, ``score`` (the class probability);
* ``<stem>.png``: a strip of up to ``max_frames`` clip frames (the first channel, grey) with
  the map blended over them (``inferno``), for a quick look.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepepil.errors import ExplanationFileError, ValidationError

__all__ = ["Explanation", "GRAD_CAM_MODELS", "explain_clip", "grad_cam", "load_explanation", "overlay",
           "save_explanations", "supports_grad_cam"]

#: The models of the zoo that Grad-CAM explains (a 3D feature map over time and space).
GRAD_CAM_MODELS: tuple[str, ...] = ("i3d", "r2plus1d")


def supports_grad_cam(model: nn.Module) -> bool:
    """True when :func:`grad_cam` can explain ``model`` (``features``, ``avgpool`` and ``fc``, as i3d and r2plus1d)."""
    return all(hasattr(model, name) for name in ("features", "avgpool", "fc"))


def _head(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    pooled = torch.flatten(model.avgpool(features), 1)
    return model.fc(model.dropout(pooled) if hasattr(model, "dropout") else pooled)


def grad_cam(model: nn.Module, clip: torch.Tensor, class_index: Optional[int] = None) -> np.ndarray:
    """Grad-CAM of ``clip`` ((C, T, H, W) or (1, C, T, H, W)) for ``class_index`` (default: the predicted class).

    Returns
    -------
    ndarray
        float32 ``(T, H, W)`` in ``[0, 1]`` (all zeros when nothing speaks for the class).

    Raises
    ------
    ValidationError
        A model without a 3D feature map (``cnn2d``: per-frame features have no time axis to explain).
    """
    if not supports_grad_cam(model):
        name = getattr(model, "config", {}).get("name", type(model).__name__)
        raise ValidationError(f"Grad-CAM over space and time needs a 3D model with a feature map (i3d, r2plus1d); "
                              f"{name!r} has none")
    x = clip.unsqueeze(0) if clip.dim() == 4 else clip
    if x.dim() != 5 or x.shape[0] != 1:
        raise ValidationError(f"clip must be (C, T, H, W) or (1, C, T, H, W), got {tuple(clip.shape)}")
    param = next(model.parameters())
    x = x.to(param.device, param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            features = model.features(x)
            if features.dim() != 5:
                raise ValidationError(f"Grad-CAM needs a (N, F, T, H, W) feature map; the model gives "
                                      f"{tuple(features.shape)}")
            features.retain_grad()
            logits = _head(model, features)
            k = int(logits.argmax(1)) if class_index is None else int(class_index)
            if not 0 <= k < logits.shape[1]:
                raise ValidationError(f"class_index must be from 0 to {logits.shape[1] - 1}, got {class_index}")
            model.zero_grad(set_to_none=True)
            logits[0, k].backward()
        weights = features.grad.mean(dim=(2, 3, 4), keepdim=True)
        cam = torch.relu((weights * features).sum(1, keepdim=True)).detach()
        cam = torch.nn.functional.interpolate(cam, size=tuple(x.shape[2:]), mode="trilinear", align_corners=False)
        cam = cam[0, 0]
        top = float(cam.max())
        cam = cam / top if top > 0 else torch.zeros_like(cam)
        return cam.float().cpu().numpy()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def overlay(frames: np.ndarray, cam: np.ndarray, *, alpha: float = 0.45, cmap: str = "inferno") -> np.ndarray:
    """Blend ``cam`` ((T, H, W) in [0, 1]) over grey ``frames`` ((T, H, W), any range): uint8 (T, H, W, 3)."""
    from matplotlib import colormaps

    frames = np.asarray(frames, dtype=np.float32)
    if frames.shape != cam.shape:
        raise ValidationError(f"frames {frames.shape} and cam {cam.shape} differ in shape")
    lo, hi = float(frames.min()), float(frames.max())
    grey = (frames - lo) / (hi - lo) if hi > lo else np.zeros_like(frames)
    heat = colormaps[cmap](np.clip(cam, 0, 1))[..., :3]
    mixed = (1 - alpha * cam[..., None]) * grey[..., None] + alpha * cam[..., None] * heat
    return (np.clip(mixed, 0, 1) * 255).round().astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class Explanation:
    """The Grad-CAM of one clip, placed on the recording: what the labeling app draws over IR and depth.

    Attributes
    ----------
    cam : ndarray
        float32 ``(T, H, W)`` in ``[0, 1]`` on the clip's grid.
    frames : ndarray
        int64 ``(T,)``: the source frame index of every clip frame (increasing).
    box_px : tuple of float
        ``(y0, y1, x0, x1)``: the clip's crop in the depth/IR image's pixels (end exclusive;
        may reach outside the image), onto which the ``(H, W)`` grid is stretched.
    class_index, class_name, score
        The explained class and its probability for the clip.
    """

    cam: np.ndarray
    frames: np.ndarray
    box_px: tuple[float, float, float, float]
    class_index: int
    class_name: str
    score: float

    def __post_init__(self) -> None:
        cam, frames = np.asarray(self.cam), np.asarray(self.frames)
        if cam.ndim != 3 or not cam.size:
            raise ValidationError(f"cam must be (T, H, W) with T, H, W >= 1, got shape {cam.shape}")
        if frames.shape != cam.shape[:1]:
            raise ValidationError(f"frames must give one source frame per cam frame ({cam.shape[0]}), "
                                  f"got shape {frames.shape}")
        if len(frames) > 1 and np.any(np.diff(frames) <= 0):
            raise ValidationError("frames must be increasing source frame indices")
        if not np.isfinite(cam).all() or cam.min() < 0 or cam.max() > 1:
            raise ValidationError("cam values must be finite and in [0, 1]")
        y0, y1, x0, x1 = (float(v) for v in self.box_px)
        if not (np.isfinite([y0, y1, x0, x1]).all() and y1 > y0 and x1 > x0):
            raise ValidationError(f"box_px must be (y0, y1, x0, x1) with y1 > y0 and x1 > x0, got {self.box_px}")
        object.__setattr__(self, "cam", cam.astype(np.float32, copy=False))
        object.__setattr__(self, "frames", frames.astype(np.int64, copy=False))
        object.__setattr__(self, "box_px", (y0, y1, x0, x1))

    @property
    def start_frame(self) -> int:
        return int(self.frames[0])

    @property
    def end_frame(self) -> int:
        """One past the last frame the clip stands for (its last frame plus one frame step)."""
        step = int(self.frames[-1] - self.frames[-2]) if len(self.frames) > 1 else 1
        return int(self.frames[-1]) + step

    def cam_index(self, frame_index: int) -> Optional[int]:
        """The cam frame shown at source frame ``frame_index`` (the latest at or before it), or None outside the clip."""
        if not self.start_frame <= frame_index < self.end_frame:
            return None
        return int(np.searchsorted(self.frames, frame_index, side="right") - 1)

    def save(self, path: Union[str, Path]) -> Path:
        """Write to ``path`` (``.npz``) atomically: a reader sees the old file or the whole new one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, cam=self.cam.astype(np.float16), frames=self.frames,
                                    box=np.asarray(self.box_px, np.float32), class_index=self.class_index,
                                    class_name=self.class_name, score=float(self.score))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path


_NPZ_KEYS = ("cam", "frames", "box", "class_index", "class_name", "score")


def load_explanation(path: Union[str, Path]) -> Explanation:
    """Read an explanation written by :meth:`Explanation.save` (or :func:`save_explanations`).

    Raises
    ------
    ExplanationFileError
        The file is missing, truncated, not an ``.npz`` or lacks one of its arrays (named).
    """
    path = Path(path)
    if not path.is_file():
        raise ExplanationFileError(f"explanation file {path} does not exist (moved or deleted?); rerun "
                                   f"`deepepil predict --explain DIR` to write it again")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _NPZ_KEYS if k not in z.files]
            if missing:
                raise ExplanationFileError(f"{path} is not a DeepEpil explanation: it lacks {', '.join(missing)} "
                                           f"(an explanation has {', '.join(_NPZ_KEYS)})")
            box = z["box"].astype(np.float64).reshape(-1)
            if box.shape != (4,):
                raise ExplanationFileError(f"{path}: box must hold 4 numbers (y0, y1, x0, x1), got {box.shape[0]}")
            return Explanation(cam=z["cam"].astype(np.float32), frames=z["frames"], box_px=tuple(box),
                               class_index=int(z["class_index"]), class_name=str(z["class_name"]),
                               score=float(z["score"]))
    except ExplanationFileError:
        raise
    except ValidationError as exc:
        raise ExplanationFileError(f"{path} holds an invalid explanation: {exc}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ExplanationFileError(f"{path} cannot be read as an explanation (truncated or not an .npz?): "
                                   f"{exc}") from None


def explain_clip(model: nn.Module, dataset: Any, index: int, class_index: Optional[int] = None) -> Explanation:
    """Grad-CAM of clip ``index`` of a :class:`~deepepil.ml.ClipDataset` (never augmented), placed on its recording.

    ``class_index`` defaults to the predicted class; the score is that class's probability.
    """
    plain = dataset.subset(np.arange(len(dataset))) if getattr(dataset, "augment", None) is not None else dataset
    return _explain_clip(model, plain, int(index), class_index)[0]


def _explain_clip(model: nn.Module, plain: Any, i: int, class_index: Optional[int]) -> tuple[Explanation, torch.Tensor]:
    """:func:`explain_clip` on an unaugmented dataset; also the clip it read (for a preview strip)."""
    clip, _ = plain[i]
    cam = grad_cam(model, clip, class_index)
    with torch.no_grad():
        prob = torch.softmax(model(clip.unsqueeze(0).to(next(model.parameters()).device)).float(), 1)[0].cpu()
    k = int(prob.argmax()) if class_index is None else int(class_index)
    box = plain.crop_box(i)
    return Explanation(cam=cam, frames=plain.frame_indices(i), box_px=(box.y0, box.y1, box.x0, box.x1),
                       class_index=k, class_name=str(plain.classes[k]), score=float(prob[k])), clip


def save_explanations(model: nn.Module, dataset: Any, indices: Sequence[int], out_dir: Union[str, Path], *,
                      class_index: Optional[int] = None, max_frames: int = 8) -> pd.DataFrame:
    """Grad-CAM of clips ``indices`` of a :class:`~deepepil.ml.ClipDataset`, written per clip to ``out_dir``.

    Returns
    -------
    DataFrame
        One row per clip: ``clip``, ``recording``, ``start_frame``, ``end_frame``, ``class_name``,
        ``score``, ``npz``, ``png`` (see the module docstring for the files).
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plain = dataset.subset(np.arange(len(dataset)))  # never augmented
    rows = []
    for i in indices:
        i = int(i)
        exp, clip = _explain_clip(model, plain, i, class_index)
        row = plain.index.iloc[i]
        stem = f"{row.recording}_{int(row.start_frame):06d}_{exp.class_name}".replace(" ", "-").replace("/", "-")
        npz = exp.save(out / f"{stem}.npz")
        cam = exp.cam
        pick = np.unique(np.linspace(0, cam.shape[0] - 1, min(max_frames, cam.shape[0])).round().astype(int))
        strip = overlay(clip[0].numpy()[pick], cam[pick])
        png = out / f"{stem}.png"
        Image.fromarray(np.concatenate(list(strip), axis=1)).save(png)
        rows.append({"clip": i, "recording": row.recording, "start_frame": int(row.start_frame),
                     "end_frame": int(row.end_frame), "class_name": exp.class_name, "score": exp.score,
                     "npz": str(npz), "png": str(png)})
    return pd.DataFrame(rows)
