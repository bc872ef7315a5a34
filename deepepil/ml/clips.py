"""The clip index: where the clips of a dataset lie and what each one's target is.

No pixels here, only frames and labels (NumPy and pandas, no torch), so the index of a
large cohort is built in a moment and can be inspected as a table before anything is read.

A clip is ``clip_frames`` frames sampled at ``fps`` from a recording (every
``recording_fps / fps``-th frame), starting at ``start_frame``; it covers the source
frames ``start_frame <= i < end_frame``. Clips are laid out with ``stride_frames``
(source frames) inside *windows*: the seizures (``window="seizure"``), each movement of
interest (``"moi"``) or the whole recording (``"recording"``). A window shorter than a
clip gets one clip centred on it.

Targets: ``"syndrome"`` (one class per recording, e.g. FLE / TLE) or ``"moi:<region>"``
(the label of that body region's MOI covering at least half of the clip -- or half of
the MOI when it is shorter than a clip -- else ``"none"``). A horizontal flip turns the
patient's left side into the right one, so every clip also carries its *mirrored*
target: the MOIs of the mirrored region (left upper limb <-> right upper limb) with left
and right swapped.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd

from deepepil.errors import ClipTooLongError, EmptyLabelsError, SingleClassError, ValidationError

__all__ = [
    "ClipSpec",
    "Target",
    "parse_target",
    "mirror_name",
    "build_clip_index",
    "clip_frame_indices",
    "BACKGROUND",
    "WINDOWS",
    "INDEX_COLUMNS",
]

#: Class of a clip whose region shows no movement of interest.
BACKGROUND = "none"
#: Where clips are laid out.
WINDOWS: tuple[str, ...] = ("seizure", "moi", "recording")
#: Columns of :func:`build_clip_index`'s table, in order.
INDEX_COLUMNS: tuple[str, ...] = (
    "recording", "storage_uri", "patient_code", "start_frame", "end_frame", "centre_frame", "frame_step",
    "target", "target_index", "mirrored_target", "mirrored_index",
)
_SIDE_RE = re.compile(r"\b(left|right)\b")


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """How clips are cut from recordings.

    Parameters
    ----------
    clip_frames : int
        Frames per clip (the model's T).
    fps : float, optional
        Frame rate of the clips; frames are subsampled from the recording (30 fps -> 15 fps takes
        every second frame). None: the recording's own rate.
    stride_frames : int, optional
        Source frames between the starts of neighbouring clips; default half a clip's span.
    window : {"seizure", "moi", "recording"}
        Where clips are laid out (see the module docstring).
    context_frames : int
        Source frames added before and after every window.
    """

    clip_frames: int = 16
    fps: Optional[float] = 15.0
    stride_frames: Optional[int] = None
    window: Literal["seizure", "moi", "recording"] = "seizure"
    context_frames: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.clip_frames, bool) or not isinstance(self.clip_frames, (int, np.integer)) \
                or self.clip_frames < 1:
            raise ValidationError(f"clip_frames must be an integer >= 1, got {self.clip_frames!r}")
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps)
                                         and self.fps > 0):
            raise ValidationError(f"fps must be a positive number of frames per second or None, got {self.fps!r}")
        if self.stride_frames is not None and (not isinstance(self.stride_frames, (int, np.integer))
                                               or self.stride_frames < 1):
            raise ValidationError(f"stride_frames must be an integer >= 1 or None, got {self.stride_frames!r}")
        if self.window not in WINDOWS:
            raise ValidationError(f"unknown window {self.window!r}; windows are {', '.join(WINDOWS)}")
        if not isinstance(self.context_frames, (int, np.integer)) or self.context_frames < 0:
            raise ValidationError(f"context_frames must be an integer >= 0, got {self.context_frames!r}")

    def frame_step(self, recording_fps: float) -> float:
        """Source frames between two clip frames in a recording of ``recording_fps``."""
        if self.fps is None:
            return 1.0
        if self.fps > recording_fps + 1e-9:
            raise ValidationError(f"fps {self.fps:g} is above the recording's {recording_fps:g} fps: clips can "
                                  f"only subsample; use fps <= {recording_fps:g} or None")
        return recording_fps / self.fps

    def span_frames(self, recording_fps: float) -> int:
        """Source frames one clip covers, first to last inclusive."""
        return int(round((self.clip_frames - 1) * self.frame_step(recording_fps))) + 1

    def stride(self, recording_fps: float) -> int:
        """Source frames between clip starts."""
        return self.stride_frames or max(1, self.span_frames(recording_fps) // 2)


@dataclasses.dataclass(frozen=True)
class Target:
    """A parsed target: ``kind`` is ``"syndrome"`` or ``"moi"``; ``region`` for MOI targets."""

    kind: Literal["syndrome", "moi"]
    region: Optional[str] = None

    @property
    def name(self) -> str:
        return self.kind if self.region is None else f"moi:{self.region}"


def parse_target(target: str, regions: Sequence[str] = ()) -> Target:
    """Parse ``"syndrome"`` or ``"moi:<region>"``; ``regions`` are the ones allowed (empty: any)."""
    if not isinstance(target, str):
        raise ValidationError(f"target must be a string ('syndrome' or 'moi:<region>'), got {target!r}")
    if target == "syndrome":
        return Target("syndrome")
    if target.startswith("moi:"):
        region = target[4:].strip()
        if regions and region not in regions:
            raise ValidationError(f"unknown region {region!r} in target {target!r}; regions are: "
                                  f"{', '.join(regions)}")
        if not region:
            raise ValidationError("target 'moi:' needs a region, e.g. 'moi:left upper limb'")
        return Target("moi", region)
    example = f"'moi:{regions[0]}'" if regions else "'moi:<region>'"
    raise ValidationError(f"unknown target {target!r}; targets are 'syndrome' (one class per recording) and "
                          f"'moi:<region>' (e.g. {example})")


def mirror_name(name: Optional[str]) -> Optional[str]:
    """``name`` with the words left and right swapped (what a horizontal flip does to a side)."""
    if name is None:
        return None
    return _SIDE_RE.sub(lambda m: "right" if m.group(1) == "left" else "left", name)


def clip_frame_indices(start_frame: int, clip_frames: int, frame_step: float) -> np.ndarray:
    """Source frame indices of a clip: ``start + round(k * step)`` for ``k < clip_frames``."""
    return start_frame + np.round(np.arange(clip_frames) * frame_step).astype(np.int64)


def _starts(lo: int, hi: int, span: int, stride: int, num_frames: int) -> list[int]:
    """Clip starts covering ``[lo, hi)``; one centred clip when the window is shorter than a clip."""
    if hi - lo <= span:
        start = (lo + hi) // 2 - span // 2
        return [min(max(start, 0), num_frames - span)]
    return list(range(lo, hi - span + 1, stride))


def _class_at(mois: pd.DataFrame, start: int, end: int, laterality_in_class: bool, mirror: bool) -> str:
    """The label of the MOI overlapping the clip most, if it covers half the clip (or half of itself).

    For MOIs longer than a clip this is the MOI at the clip's centre; a short MOI counts
    when the clip holds most of it. :data:`BACKGROUND` when no MOI qualifies.
    """
    if mois.empty:
        return BACKGROUND
    lengths = mois["end_frame"] - mois["start_frame"]
    overlap = np.minimum(mois["end_frame"], end) - np.maximum(mois["start_frame"], start)
    enough = overlap * 2 >= np.minimum(lengths, end - start)
    if not (enough & (overlap > 0)).any():
        return BACKGROUND
    chosen = mois[enough & (overlap > 0)]
    ranked = sorted(zip(-overlap[chosen.index].to_numpy(), chosen["label"], chosen["laterality"].fillna("")))
    _, label, side = ranked[0]
    if laterality_in_class and side:
        side = mirror_name(side) if mirror else side
        return f"{label} ({side})"
    return str(label)


def build_clip_index(
    mois: pd.DataFrame,
    recordings: pd.DataFrame,
    spec: ClipSpec,
    target: Target,
    *,
    seizures: Optional[pd.DataFrame] = None,
    classes: Optional[Sequence[str]] = None,
    laterality_in_class: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """Lay out the clips and their targets.

    Parameters
    ----------
    mois : DataFrame
        The snapshot's MOIs: ``storage_uri``, ``region``, ``label``, ``laterality``,
        ``start_frame``, ``end_frame`` (as :attr:`deepepil.labels.snapshot.Snapshot.mois`).
    recordings : DataFrame
        One row per recording: ``storage_uri``, ``name``, ``patient_code``, ``num_frames``,
        ``fps``, and for the syndrome target ``syndrome``.
    spec : ClipSpec
        Clip length, rate, stride and window.
    target : Target
        What each clip is labelled with.
    seizures : DataFrame, optional
        ``storage_uri``, ``onset_frame``, ``offset_frame`` (NaN: to the end): the windows of
        ``window="seizure"``. A recording without a seizure row uses the span of its MOIs.
    classes : sequence of str, optional
        The class list, in order (the model's output order). Default: the classes found, sorted.
    laterality_in_class : bool
        MOI targets: classes name the side too (``"clonic (left)"``).

    Returns
    -------
    (DataFrame, list of str)
        The index (columns :data:`INDEX_COLUMNS`) and the classes.

    Raises
    ------
    EmptyLabelsError, SingleClassError, ClipTooLongError, ValidationError
    """
    if mois.empty:
        raise EmptyLabelsError("the label snapshot has no MOIs: there is nothing to train on. Label some "
                               "recordings, then freeze them with store.create_snapshot(name)")
    rows: list[dict[str, Any]] = []
    by_uri = {uri: group for uri, group in mois.groupby("storage_uri", sort=False)}
    seizure_by_uri = ({uri: g for uri, g in seizures.groupby("storage_uri", sort=False)}
                      if seizures is not None and not seizures.empty else {})
    for rec in recordings.itertuples(index=False):
        rec_mois = by_uri.get(rec.storage_uri, mois.iloc[:0])
        n, fps = int(rec.num_frames), float(rec.fps)
        span, stride, step = spec.span_frames(fps), spec.stride(fps), spec.frame_step(fps)
        if span > n:
            raise ClipTooLongError(
                f"recording {rec.name!r} has {n} frames ({n / fps:.2f} s at {fps:g} fps) but a clip of "
                f"{spec.clip_frames} frames at {spec.fps or fps:g} fps spans {span}: use fewer clip_frames "
                f"(at most {1 + int((n - 1) / step)}), a higher fps, or leave this recording out")
        windows = _windows(rec_mois, seizure_by_uri.get(rec.storage_uri), spec.window, target, n)
        starts: set[int] = set()
        for lo, hi in windows:
            lo, hi = max(0, lo - spec.context_frames), min(n, hi + spec.context_frames)
            starts.update(_starts(lo, hi, span, stride, n))
        if target.kind == "moi":
            own = rec_mois[rec_mois["region"] == target.region]
            other = rec_mois[rec_mois["region"] == mirror_name(target.region)]
        for start in sorted(starts):
            end, centre = start + span, start + span // 2
            if target.kind == "syndrome":
                cls = getattr(rec, "syndrome", None)
                mirrored = mirror_name(cls)
            else:
                cls = _class_at(own, start, end, laterality_in_class, mirror=False)
                mirrored = _class_at(other, start, end, laterality_in_class, mirror=True)
            rows.append({"recording": rec.name, "storage_uri": rec.storage_uri, "patient_code": rec.patient_code,
                         "start_frame": start, "end_frame": end, "centre_frame": centre, "frame_step": step,
                         "target": cls, "mirrored_target": mirrored})
    if not rows:
        raise EmptyLabelsError(f"no clips: window={spec.window!r} found nothing to cut in {len(recordings)} "
                               f"recording(s) for target {target.name!r}; try window='seizure' or 'recording'")
    index = pd.DataFrame(rows)
    found = sorted(set(index["target"]))
    if len(found) < 2:
        where = f"{index['recording'].nunique()} recording(s), {index['patient_code'].nunique()} patient(s)"
        hint = ("give recordings of at least two classes (e.g. FLE and TLE patients)" if target.kind == "syndrome"
                else "use window='recording' to include clips without MOIs, or another region")
        raise SingleClassError(f"every clip of target {target.name!r} has class {found[0]!r} ({where}): a model "
                               f"cannot learn from one class; {hint}")
    if classes is None:
        classes = sorted(set(found) | set(index["mirrored_target"]))
    else:
        classes = list(classes)
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise ValidationError(f"targets {unknown} are not in classes {classes}; add them or leave classes=None")
    lookup = {c: i for i, c in enumerate(classes)}
    index["target_index"] = index["target"].map(lookup).astype("int64")
    # a mirrored class the class list lacks: flipping this clip would invent a label, so it is not flipped (-1)
    index["mirrored_index"] = index["mirrored_target"].map(lookup).fillna(-1).astype("int64")
    index["frame_step"] = index["frame_step"].astype("float64")
    return index[list(INDEX_COLUMNS)], list(classes)


def _windows(rec_mois: pd.DataFrame, seizures: Optional[pd.DataFrame], window: str, target: Target,
             num_frames: int) -> list[tuple[int, int]]:
    if window == "recording":
        return [(0, num_frames)]
    if window == "seizure":
        if seizures is not None and not seizures.empty:
            offsets = seizures["offset_frame"].fillna(num_frames).astype("int64")
            return list(zip(seizures["onset_frame"].astype("int64"), offsets))
        if rec_mois.empty:
            return []
        return [(int(rec_mois["start_frame"].min()), int(rec_mois["end_frame"].max()))]
    mine = rec_mois
    if target.kind == "moi":
        mine = rec_mois[rec_mois["region"].isin({target.region, mirror_name(target.region)})]
    return list(zip(mine["start_frame"].astype("int64"), mine["end_frame"].astype("int64")))
