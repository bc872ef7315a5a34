"""Pretrained weights from local files: load, inflate 2D to 3D, adapt input channels.

Nothing is downloaded: a clinic's GPU server has no internet. Put the file on the server
and give its path (``build_model(..., pretrained_path=...)`` or :func:`load_weights`).

A file is a PyTorch state dict (``.pt`` / ``.pth``; also a checkpoint dict holding one
under ``"state_dict"``, ``"model_state_dict"`` or ``"model"``; a ``module.`` prefix from
DistributedDataParallel is dropped). Each of the model's entries is filled from the entry
of the same name:

* the same shape: copied;
* a 2D convolution ``(out, in, kh, kw)`` for a 3D one ``(out, in, kt, kh, kw)``: *inflated*,
  repeated over the ``kt`` frames and divided by ``kt`` (I3D's bootstrapping), so a clip
  that does not change over time gives the 2D network's response;
* the first convolution with another number of input channels (an RGB network for IR, or
  IR + depth): the kernel summed over the file's channels, spread evenly over the model's,
  so a grey image repeated over the model's channels gives the 2D network's response to
  that grey image;
* the classifier ``fc`` when its class count differs: kept as initialized (``head="auto"``).

Anything else -- missing entries, entries the model has no place for, other shapes --
raises :class:`~deepepil.errors.WeightsMismatchError` naming the file and the keys.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from deepepil.errors import ValidationError
from deepepil.errors import CorruptWeightsError, WeightsMismatchError

__all__ = ["LoadReport", "read_state_dict", "inflate_2d", "adapt_in_channels", "load_weights", "HEAD_MODES"]

#: How :func:`load_weights` treats the classifier.
HEAD_MODES: tuple[str, ...] = ("auto", "skip", "require")
_WRAPPERS = ("state_dict", "model_state_dict", "model")


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did with each entry."""

    path: str
    loaded: tuple[str, ...]
    inflated: tuple[str, ...]
    adapted: tuple[str, ...]
    head: str
    ignored: tuple[str, ...]

    def __str__(self) -> str:
        return (f"{self.path}: {len(self.loaded)} copied, {len(self.inflated)} inflated 2D -> 3D, "
                f"{len(self.adapted)} input convolution(s) adapted, classifier {self.head}, "
                f"{len(self.ignored)} file entries ignored")


def read_state_dict(path: Union[str, os.PathLike]) -> dict[str, torch.Tensor]:
    """The tensors of a weights file; :class:`CorruptWeightsError` when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CorruptWeightsError("no such file (weights load from local files only; nothing is downloaded)",
                                  str(path))
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a pickle, unsafe pickle content: all mean "not usable"
        raise CorruptWeightsError(f"not a readable PyTorch weights file ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})", str(path)) from None
    if isinstance(data, Mapping):
        for key in _WRAPPERS:
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not data:
        raise CorruptWeightsError(f"holds a {type(data).__name__}, not a state dict of named tensors "
                                  f"(save one with torch.save(model.state_dict(), path))", str(path))
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CorruptWeightsError(f"entries that are not named tensors: {', '.join(bad[:5])}", str(path))
    if all(k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}
    return dict(data)


def inflate_2d(weight: torch.Tensor, time_kernel: int) -> torch.Tensor:
    """A 2D kernel ``(out, in, kh, kw)`` as a 3D one ``(out, in, t, kh, kw)``: repeated over time, divided by ``t``."""
    return weight.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1) / time_kernel


def adapt_in_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A first-layer kernel for ``in_channels`` inputs: summed over the file's, spread evenly over the new ones."""
    summed = weight.sum(1, keepdim=True)
    repeats = [1] * weight.ndim
    repeats[1] = in_channels
    return summed.repeat(*repeats) / in_channels


def _is_head(model: nn.Module, key: str) -> bool:
    return any(key.startswith(p) for p in getattr(model, "head_prefixes", ("fc.",)))


def load_weights(model: nn.Module, path: Union[str, os.PathLike], *, head: str = "auto",
                 strict: bool = True) -> LoadReport:
    """Fill ``model`` from the weights file at ``path`` (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        A model of the zoo (or any module; zoo models name their classifier and first convolution).
    path : path
        Local ``.pt`` / ``.pth`` file.
    head : {"auto", "skip", "require"}
        ``"auto"``: load the classifier when its shape fits, else keep it as initialized;
        ``"skip"``: never load it; ``"require"``: a classifier that does not fit is an error.
    strict : bool
        File entries the model has no place for are an error (the model's known extras, such
        as Inception's auxiliary classifiers, excepted).

    Returns
    -------
    LoadReport

    Raises
    ------
    CorruptWeightsError
        The file is missing, unreadable, or not a state dict.
    WeightsMismatchError
        The file does not fit the model; the message lists the keys and shapes.
    """
    if head not in HEAD_MODES:
        raise ValidationError(f"head must be one of {', '.join(HEAD_MODES)}, got {head!r}")
    source = read_state_dict(path)
    state = model.state_dict()
    prefix = getattr(model, "pretrained_prefix", "")
    if prefix and not any(k.startswith(prefix) for k in source):
        source = {(prefix + k if prefix + k in state else k): v for k, v in source.items()}
    input_conv = getattr(model, "input_conv", None)
    ignore = tuple(getattr(model, "ignore_pretrained", ()))
    loaded, inflated, adapted, missing, mismatched = [], [], [], [], []
    head_status = "loaded"
    new_state = dict(state)
    for key, target in state.items():
        is_head = _is_head(model, key)
        if is_head and head == "skip":
            head_status = "skipped"
            continue
        if key not in source:
            if key.endswith("num_batches_tracked"):
                continue
            if is_head and head == "auto":
                head_status = "kept (not in the file)"
            else:
                missing.append(key)
            continue
        value = source[key]
        shape, want = tuple(value.shape), tuple(target.shape)
        if shape == want:
            new_state[key] = value.to(target.dtype)
            loaded.append(key)
            continue
        if is_head and head == "auto":
            head_status = f"kept as initialized (the file's has shape {shape}, the model's {want})"
            continue
        converted = value
        if key == input_conv and value.ndim in (4, 5) and value.shape[1] != target.shape[1]:
            converted = adapt_in_channels(converted, target.shape[1])
            adapted.append(key)
        if converted.ndim == 4 and target.ndim == 5:
            if tuple(converted.shape[:2]) == want[:2] and tuple(converted.shape[2:]) == want[3:]:
                converted = inflate_2d(converted, want[2])
                inflated.append(key)
        if tuple(converted.shape) != want:
            mismatched.append(f"{key}: file {list(shape)} -> model {list(want)}")
            if key in adapted:
                adapted.remove(key)
            continue
        new_state[key] = converted.to(target.dtype)
    ignored = sorted(k for k in source if k not in state and k.startswith(ignore))
    unexpected = sorted(k for k in source if k not in state and not k.startswith(ignore)) if strict else []
    if missing or mismatched or unexpected:
        name = getattr(model, "config", {}).get("name", type(model).__name__)
        hint = ""
        if len(missing) + len(unexpected) > len(state) // 2:
            hint = (f"Is it the file of another model? The file's first entries: "
                    f"{', '.join(list(source)[:3])}; the model's: {', '.join(list(state)[:3])}")
        elif mismatched:
            hint = "A model of another width or depth? Build it with the options the file was saved with"
        raise WeightsMismatchError(str(path), model=name, missing=missing, unexpected=unexpected,
                                   mismatched=mismatched, hint=hint)
    model.load_state_dict(new_state)
    return LoadReport(str(path), tuple(loaded), tuple(inflated), tuple(adapted), head_status, tuple(ignored))
