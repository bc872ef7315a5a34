"""The model zoo: video classifiers built by name.

>>> from deepepil.ml import build_model, list_models
>>> model = build_model("i3d", num_classes=2, in_channels=2, width=0.5)       # doctest: +SKIP
>>> model = build_model("cnn2d", 2, 1, pretrained_path="resnet18-imagenet.pth", head="gru")
>>> model.config        # name, classes, channels and options: enough to build it again

Every model takes ``(N, C, T, H, W)`` float clips and returns ``(N, num_classes)`` logits,
has a linear classifier ``fc``, and carries ``config`` (JSON-serialisable) so a saved
state dict can be rebuilt into the same network. Weights come from local files only.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from typing import Any, Optional, Union

import pandas as pd
import torch
from torch import nn

from deepepil.errors import ValidationError
from deepepil.ml.models.cnn2d_temporal import Cnn2dTemporal, cnn2d
from deepepil.ml.models.i3d import InceptionV1, i3d
from deepepil.ml.models.r2plus1d import R2Plus1D, r2plus1d

__all__ = [
    "ModelInfo",
    "MODELS",
    "register_model",
    "build_model",
    "list_models",
    "count_parameters",
    "InceptionV1",
    "R2Plus1D",
    "Cnn2dTemporal",
]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A model of the zoo: its factory ``(num_classes, in_channels, **options) -> nn.Module`` and a description."""

    name: str
    factory: Callable[..., nn.Module]
    description: str
    min_frames: int = 1
    min_size: int = 32

    @property
    def options(self) -> dict[str, Any]:
        """Keyword options of the factory and their defaults."""
        params = inspect.signature(self.factory).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


#: The models :func:`build_model` knows, by name.
MODELS: dict[str, ModelInfo] = {
    "i3d": ModelInfo("i3d", i3d, "I3D: Inception-v1 inflated to 3D; takes inflated 2D ImageNet Inception-v1 "
                     "weights", min_frames=8),
    "r2plus1d": ModelInfo("r2plus1d", r2plus1d, "R(2+1)D-18: ResNet-18 with (2+1)D convolutions; lighter per clip"),
    "cnn2d": ModelInfo("cnn2d", cnn2d, "2D ResNet per frame + temporal head (mean, conv1d or GRU); takes 2D "
                       "ImageNet ResNet weights"),
}


def register_model(name: str, factory: Callable[..., nn.Module], description: str, *, min_frames: int = 1,
                   min_size: int = 32) -> None:
    """Add a model to the zoo (``factory(num_classes, in_channels, **options)``); a known name is refused."""
    if name in MODELS:
        raise ValidationError(f"a model named {name!r} exists already; choose another name")
    MODELS[name] = ModelInfo(name, factory, description, min_frames, min_size)


def _info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise ValidationError(f"unknown model {name!r}; models are: {', '.join(MODELS)} "
                              f"(deepepil.ml.list_models() describes them)")
    return MODELS[name]


def build_model(name: str, num_classes: int, in_channels: int = 1,
                pretrained_path: Optional[Union[str, os.PathLike]] = None, *, head_weights: str = "auto",
                **options: Any) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes and ``in_channels`` input channels.

    Parameters
    ----------
    name : str
        One of :data:`MODELS` (``"i3d"``, ``"r2plus1d"``, ``"cnn2d"``).
    num_classes : int
        Outputs (logits).
    in_channels : int
        Input channels (``ClipDataset.in_channels``).
    pretrained_path : path, optional
        A local state dict (``.pt``/``.pth``) of this model, or of its 2D ImageNet counterpart,
        which is inflated; see :func:`deepepil.ml.weights.load_weights`.
    head_weights : {"auto", "skip", "require"}
        Whether the file's classifier is loaded (see :func:`~deepepil.ml.weights.load_weights`).
    **options
        Model options, e.g. ``width=0.5``, ``dropout=0.3``, ``head="gru"``; see :func:`list_models`.

    Returns
    -------
    torch.nn.Module
        With ``config`` (name, num_classes, in_channels, options) and, when weights were
        loaded, ``pretrained`` (a :class:`~deepepil.ml.weights.LoadReport`).

    Raises
    ------
    ValidationError
        Unknown model or option, or a bad value.
    CorruptWeightsError, WeightsMismatchError
        The weights file cannot be read or does not fit.
    """
    info = _info(name)
    for label, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"{label} must be an integer >= 1, got {value!r}")
    allowed = info.options
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        shown = ", ".join(f"{k}={v!r}" for k, v in allowed.items())
        raise ValidationError(f"model {name!r} has no option {', '.join(unknown)}; its options are: {shown}")
    try:
        model = info.factory(num_classes, in_channels, **options)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"model {name!r}: {exc}") from None
    model.config = {"name": name, "num_classes": num_classes, "in_channels": in_channels,
                    **{**allowed, **options}}
    if pretrained_path is not None:
        from deepepil.ml.weights import load_weights

        model.pretrained = load_weights(model, pretrained_path, head=head_weights)
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def list_models() -> pd.DataFrame:
    """The zoo: name, description, options with defaults, parameters (2 classes, 1 channel, defaults)."""
    rows = []
    for info in MODELS.values():
        with torch.device("meta"):  # counts without allocating
            model = info.factory(2, 1)
        rows.append({"name": info.name, "description": info.description, "options": info.options,
                     "parameters": count_parameters(model), "min_frames": info.min_frames,
                     "min_size": info.min_size})
    return pd.DataFrame(rows)
