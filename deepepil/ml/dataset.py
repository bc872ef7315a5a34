"""ClipDataset: a torch Dataset of video clips cut from recording stores, labelled from a snapshot.

>>> from deepepil import labels, ml
>>> store = labels.connect()                                            # doctest: +SKIP
>>> ds = ml.ClipDataset.from_database(store.snapshot("train-v1"), target="syndrome",
...                                   streams=("ir", "depth"), clip_frames=16, fps=15, size=(112, 112))
>>> clip, target = ds[0]                 # float32 (C, T, H, W), int64 class index
>>> ds.index                             # one row per clip: recording, patient_code, frames, target
>>> for split in ml.leave_one_patient_out(ds):
...     train, test = ds.subset(split.train, augment=ml.Augment()), ds.subset(split.test)

Everything that can be wrong with the configuration (unknown names, an empty or one-class
snapshot, a missing stream, a clip longer than a recording) raises when the dataset is
built, before any training starts. Reading happens in ``__getitem__`` only, through
readers made in the reading process, so the dataset is safe with multi-worker DataLoaders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
import pandas as pd
import torch

from deepepil.errors import EmptyLabelsError, MissingStreamError, ValidationError
from deepepil.ml import transforms as T
from deepepil.ml._io import ClipReader
from deepepil.ml.clips import INDEX_COLUMNS, ClipSpec, Target, build_clip_index, clip_frame_indices, parse_target
from deepepil.ml.tables import snapshot_mois

if TYPE_CHECKING:
    from deepepil.labels.snapshot import Snapshot

__all__ = ["ClipDataset", "STREAMS", "CROPS"]

#: Streams a clip can stack, and their channels.
STREAMS: dict[str, tuple[str, ...]] = {"ir": ("ir",), "depth": ("depth",), "rgb": ("rgb.r", "rgb.g", "rgb.b")}
#: Crop modes: the patient's box, the bed's box, or the whole frame.
CROPS: tuple[Optional[str], ...] = ("patient", "bed", None)
_BOX_CACHE_ENTRIES = 4096


def _channels(streams: Sequence[str], motion: bool) -> tuple[str, ...]:
    """The channel names of ``streams``, then (with ``motion``) one ``<channel>_motion`` each."""
    image = tuple(c for s in streams for c in STREAMS[s])
    return image + (tuple(f"{c}_motion" for c in image) if motion else ())


def _local_path(uri: str) -> str:
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    return uri


class ClipDataset(torch.utils.data.Dataset):
    """Clips of recordings with targets from a label snapshot.

    Parameters
    ----------
    snapshot : Snapshot or DataFrame
        A label snapshot (``store.snapshot(...)``), or a DataFrame shaped like its ``mois``.
    recordings : DataFrame
        One row per recording (:func:`deepepil.ml.recording_table`): ``storage_uri`` and
        ``patient_code``; ``syndrome`` for the syndrome target. Recordings of the snapshot
        that are not listed are an error.
    target : str
        ``"syndrome"`` (one class per recording) or ``"moi:<region>"`` (the label of the
        region's MOI covering the clip, ``"none"`` without one); see :mod:`deepepil.ml.clips`.
    streams : sequence of {"ir", "depth", "rgb"}
        Stacked as channels in this order (rgb gives three).
    clip_frames, fps, stride_frames, window, context_frames
        How clips are cut; see :class:`deepepil.ml.clips.ClipSpec`.
    size : (int, int)
        Output height and width in pixels.
    crop : {"patient", "bed", None}
        Crop to the patient (or the bed) found in the depth stream, with ``crop_margin``
        (fraction of the box, each side); None scales the whole frame (padded to the aspect).
    ir_gamma : float
        Gamma applied to IR after mapping the store's display range to ``[0, 1]``.
    motion : bool
        Add one motion channel per image channel (``"ir_motion"``, ...): the difference of each
        frame from the one before (the first frame repeats the second's). It lets a 2D network
        whose frames are pooled over time see movement, not only posture.
    stats : mapping, optional
        Per channel ``(mean, std)`` for standardization (:meth:`measure_stats`); default
        ``(0.5, 0.25)`` for every channel.
    augment : Augment, optional
        Random flips, crops, brightness/contrast and temporal jitter (training only).
    seizures : DataFrame, optional
        Seizure windows (:func:`deepepil.ml.seizure_table`) for ``window="seizure"``.
    class_of : mapping, optional
        Syndrome target: recording name or storage URI -> class, instead of ``recordings.syndrome``.
    classes : sequence of str, optional
        The class list in model output order; default the classes found, sorted.
    laterality_in_class : bool
        MOI targets: name the side in the class (``"clonic (left)"``).
    """

    def __init__(
        self,
        snapshot: Union["Snapshot", pd.DataFrame],
        recordings: pd.DataFrame,
        *,
        target: str = "syndrome",
        streams: Sequence[str] = ("ir",),
        clip_frames: int = 16,
        fps: Optional[float] = 15.0,
        stride_frames: Optional[int] = None,
        window: str = "seizure",
        context_frames: int = 0,
        size: tuple[int, int] = (112, 112),
        crop: Optional[str] = "patient",
        crop_margin: float = 0.1,
        ir_gamma: float = 0.5,
        motion: bool = False,
        stats: Optional[Mapping[str, tuple[float, float]]] = None,
        augment: Optional[T.Augment] = None,
        seizures: Optional[pd.DataFrame] = None,
        class_of: Optional[Mapping[str, str]] = None,
        classes: Optional[Sequence[str]] = None,
        laterality_in_class: bool = False,
    ) -> None:
        streams = (streams,) if isinstance(streams, str) else tuple(streams)
        unknown = [s for s in streams if s not in STREAMS]
        if unknown or not streams or len(set(streams)) != len(streams):
            raise ValidationError(f"streams must be distinct names from {', '.join(STREAMS)}, got {list(streams)}")
        if crop not in CROPS:
            raise ValidationError(f"unknown crop {crop!r}; crops are 'patient', 'bed' and None (whole frame)")
        if len(size) != 2 or any(not isinstance(v, (int, np.integer)) or v < 8 for v in size):
            raise ValidationError(f"size must be (height, width) in pixels, each >= 8, got {size!r}")
        if not 0 <= crop_margin <= 1:
            raise ValidationError(f"crop_margin must be from 0 to 1 (a fraction of the box), got {crop_margin}")
        if augment is not None and not isinstance(augment, T.Augment):
            raise ValidationError(f"augment must be a deepepil.ml.Augment or None, got {type(augment).__name__}")
        self.spec = ClipSpec(clip_frames=clip_frames, fps=fps, stride_frames=stride_frames, window=window,
                             context_frames=context_frames)
        mois = snapshot_mois(snapshot)
        if mois.empty:
            raise EmptyLabelsError("the label snapshot has no MOIs: there is nothing to train on. Label some "
                                   "recordings, then freeze them with store.create_snapshot(name)")
        self.target: Target = parse_target(target, sorted(set(mois["region"])))
        self.streams = streams
        self.motion = bool(motion)
        self.channels: tuple[str, ...] = _channels(streams, self.motion)
        self.size = (int(size[0]), int(size[1]))
        self.crop, self.crop_margin, self.ir_gamma = crop, float(crop_margin), float(ir_gamma)
        self.augment = augment
        self.snapshot_hash: Optional[str] = getattr(snapshot, "content_hash", None)
        self.laterality_in_class = bool(laterality_in_class)
        self.recordings = self._recordings(mois, recordings, class_of)
        self.index, self.classes = build_clip_index(
            mois, self.recordings, self.spec, self.target, seizures=seizures, classes=classes,
            laterality_in_class=self.laterality_in_class)
        self.stats = self._check_stats(stats)
        self._columns()
        self._state: Optional[dict[str, Any]] = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_database(cls, snapshot: Union["Snapshot", int, str], url: Optional[str] = None, *,
                      user: Optional[str] = None, **options: Any) -> "ClipDataset":
        """Build from a snapshot (object, id or hash) with the recordings and seizures of the label database."""
        from deepepil.ml.tables import recording_table, seizure_table

        if isinstance(snapshot, (int, str)):
            from deepepil.labels.service import connect

            with connect(url, user=user) as store:
                snapshot = store.snapshot(snapshot)
        options.setdefault("seizures", seizure_table(snapshot, url, user=user))
        return cls(snapshot, recording_table(snapshot, url, user=user), **options)

    @classmethod
    def for_windows(cls, settings: Mapping[str, Any], storage_uri: str, name: str,
                    starts: Sequence[int]) -> "ClipDataset":
        """The windows ``starts`` of one recording, cut as a registered model was trained (for inference).

        ``settings`` are the model's inference settings (``metadata["deepepil"]``); every window's
        target is the first class. A recording without a stream the model reads raises
        :class:`~deepepil.errors.MissingStreamError`.
        """
        ds = object.__new__(cls)
        ds.spec = ClipSpec(**settings["clip"])
        ds.streams, ds.channels = tuple(settings["streams"]), tuple(settings["channels"])
        ds.size = (int(settings["size"][0]), int(settings["size"][1]))
        ds.crop, ds.crop_margin = settings["crop"], float(settings["crop_margin"])
        ds.ir_gamma = float(settings["ir_gamma"])
        ds.motion = bool(settings.get("motion", False))
        ds.augment, ds.snapshot_hash = None, settings.get("snapshot_hash")
        ds.laterality_in_class = bool(settings.get("laterality_in_class"))
        ds.target = parse_target(settings["target"])
        ds.classes = list(settings["classes"])
        table = pd.DataFrame([{"storage_uri": storage_uri, "patient_code": "-", "name": name}])
        ds.recordings = ds._recordings(table[["storage_uri"]], table, {storage_uri: ds.classes[0]})
        fps = float(ds.recordings["fps"].iloc[0])
        span, step = ds.spec.span_frames(fps), ds.spec.frame_step(fps)
        starts = np.asarray(starts, dtype=np.int64)
        ds.index = pd.DataFrame({
            "recording": name, "storage_uri": storage_uri, "patient_code": "-", "start_frame": starts,
            "end_frame": starts + span, "centre_frame": starts + span // 2, "frame_step": float(step),
            "target": ds.classes[0], "target_index": 0, "mirrored_target": None, "mirrored_index": -1,
        })[list(INDEX_COLUMNS)]
        ds.stats = ds._check_stats({c: tuple(v) for c, v in settings["stats"].items()})
        ds._columns()
        ds._state = None
        return ds

    def _recordings(self, mois: pd.DataFrame, recordings: pd.DataFrame,
                    class_of: Optional[Mapping[str, str]]) -> pd.DataFrame:
        from deepepil.recordings.store import read_store_attrs

        missing_cols = [c for c in ("storage_uri", "patient_code") if c not in recordings.columns]
        if missing_cols:
            raise ValidationError(f"recordings needs columns storage_uri and patient_code (missing "
                                  f"{', '.join(missing_cols)}); deepepil.ml.recording_table(snapshot) makes it")
        table = recordings.drop_duplicates("storage_uri").set_index("storage_uri", drop=False)
        uris = sorted(set(mois["storage_uri"]))
        unlisted = [u for u in uris if u not in table.index]
        if unlisted:
            raise ValidationError(f"{len(unlisted)} recording(s) of the snapshot are not in recordings (not "
                                  f"visible to you, or not registered): {', '.join(unlisted[:5])}")
        rows = []
        for uri in uris:
            info = table.loc[uri]
            path = _local_path(uri)
            attrs = read_store_attrs(path)
            name = str(info["name"]) if "name" in table.columns and pd.notna(info.get("name")) \
                else str(attrs.get("name", Path(path).stem))
            have = list(attrs.get("streams", []))
            needed = list(self.streams) + (["depth"] if self.crop and "depth" not in self.streams else [])
            lacking = [s for s in needed if s not in have]
            if lacking:
                why = (" (crop=%r finds the patient in depth; pass crop=None to scale whole frames)" % self.crop
                       if lacking == ["depth"] and "depth" not in self.streams else "")
                raise MissingStreamError(f"recording {name!r} ({path}) has no {' or '.join(lacking)} stream; it has "
                                         f"{', '.join(have) or 'none'}{why}. Choose streams it has, or leave it out")
            syndrome = None
            if self.target.kind == "syndrome":
                if class_of is not None:
                    syndrome = class_of.get(name, class_of.get(uri))
                elif "syndrome" in table.columns and pd.notna(info["syndrome"]):
                    syndrome = str(info["syndrome"])
            code = info["patient_code"]
            if code is None or (isinstance(code, float) and np.isnan(code)) or not str(code).strip():
                raise ValidationError(f"recording {name!r} has no patient_code: patient-grouped splits need one")
            rows.append({"storage_uri": uri, "path": path, "name": name, "patient_code": str(code),
                         "num_frames": int(attrs["num_frames"]), "fps": float(attrs["fps"]), "syndrome": syndrome,
                         "attrs": {k: attrs.get(k) for k in ("display", "calibration")}})
        frame = pd.DataFrame(rows)
        if self.target.kind == "syndrome":
            unknown = frame.loc[frame["syndrome"].isna(), "name"].tolist()
            if unknown:
                raise ValidationError(
                    f"target 'syndrome' needs a class for every recording; none for {', '.join(unknown[:5])}"
                    + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else "")
                    + ": record the patient's epilepsy type or the seizures' localization, or pass class_of=")
        return frame

    def _check_stats(self, stats: Optional[Mapping[str, tuple[float, float]]]) -> tuple[tuple[float, float], ...]:
        if stats is None:
            return tuple(T.DEFAULT_STATS for _ in self.channels)
        unknown = sorted(set(stats) - set(self.channels))
        if unknown:
            raise ValidationError(f"stats for unknown channels {unknown}; channels are {list(self.channels)}")
        out = []
        for c in self.channels:
            mean, std = stats.get(c, T.DEFAULT_STATS)
            if not std > 0:
                raise ValidationError(f"stats[{c!r}] std must be > 0, got {std}")
            out.append((float(mean), float(std)))
        return tuple(out)

    def _columns(self) -> None:
        # plain arrays: fast to index in __getitem__ and cheap to pickle into workers
        ix = self.index
        rec_of = {u: i for i, u in enumerate(self.recordings["storage_uri"])}
        self._rec = ix["storage_uri"].map(rec_of).to_numpy(np.int64)
        self._start = ix["start_frame"].to_numpy(np.int64)
        self._step = ix["frame_step"].to_numpy(np.float64)
        self._target = ix["target_index"].to_numpy(np.int64)
        self._mirrored = ix["mirrored_index"].to_numpy(np.int64)
        self._paths = self.recordings["path"].tolist()
        self._num_frames = self.recordings["num_frames"].to_numpy(np.int64)
        self._fps = self.recordings["fps"].to_numpy(np.float64)
        self._attrs = self.recordings["attrs"].tolist()

    # -- views ------------------------------------------------------------------------------

    def subset(self, indices: Sequence[int], *, augment: Optional[T.Augment] = None,
               stats: Optional[Mapping[str, tuple[float, float]]] = None) -> "ClipDataset":
        """The clips ``indices`` (positions in :attr:`index`) as a dataset with the same classes.

        ``augment`` and ``stats`` apply to the new dataset only (e.g. augment the training part).
        """
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"subset indices must be from 0 to {len(self) - 1}")
        if augment is not None and not isinstance(augment, T.Augment):
            raise ValidationError(f"augment must be a deepepil.ml.Augment or None, got {type(augment).__name__}")
        new = object.__new__(type(self))
        new.__dict__.update(self.__getstate__())
        new.index = self.index.iloc[indices].reset_index(drop=True)
        new.augment = augment
        new.stats = self._check_stats(stats) if stats is not None else self.stats
        new._columns()
        new._state = None
        return new

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return len(self.channels)

    @property
    def patient_codes(self) -> np.ndarray:
        """The patient of every clip (what patient-grouped splits group by)."""
        return self.index["patient_code"].to_numpy()

    @property
    def targets(self) -> np.ndarray:
        """The class index of every clip."""
        return self._target.copy()

    def class_counts(self) -> pd.DataFrame:
        """Clips and patients per class."""
        g = self.index.groupby("target")
        out = pd.DataFrame({"clips": g.size(), "patients": g["patient_code"].nunique()})
        return out.reindex(self.classes, fill_value=0)

    def config(self) -> dict[str, Any]:
        """What defines this dataset, JSON-serialisable (for run tracking)."""
        return {
            "snapshot_hash": self.snapshot_hash, "target": self.target.name, "streams": list(self.streams),
            "clip": dataclasses.asdict(self.spec), "size": list(self.size), "crop": self.crop,
            "crop_margin": self.crop_margin, "ir_gamma": self.ir_gamma, "motion": self.motion,
            "stats": [list(s) for s in self.stats],
            "classes": list(self.classes), "laterality_in_class": self.laterality_in_class,
            "augment": dataclasses.asdict(self.augment) if self.augment else None,
        }

    @property
    def fingerprint(self) -> str:
        """sha256 of :meth:`config` and the clip index: the same data in the same order, the same value."""
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True, default=str).encode())
        digest.update(pd.util.hash_pandas_object(self.index.drop(columns=["frame_step"]), index=False).to_numpy()
                      .tobytes())
        return digest.hexdigest()

    def __len__(self) -> int:
        return len(self._start)

    def __repr__(self) -> str:
        return (f"ClipDataset({len(self)} clips of {self.spec.clip_frames} frames, {self.index['recording'].nunique()}"
                f" recordings, {self.index['patient_code'].nunique()} patients, target {self.target.name!r}, "
                f"classes {self.classes}, channels {list(self.channels)}, size {self.size})")

    # -- pickling: never carry readers (open stores) into another process ----------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_state"] = None
        return state

    def _local(self) -> dict[str, Any]:
        if self._state is None or self._state["pid"] != os.getpid():
            self._state = {"pid": os.getpid(), "readers": {}, "boxes": {}}
        return self._state

    def _reader(self, rec: int, stream: str) -> ClipReader:
        readers = self._local()["readers"]
        key = (rec, stream)
        if key not in readers:
            readers[key] = ClipReader(self._paths[rec], stream)
        return readers[key]

    # -- reading ---------------------------------------------------------------------------

    def frame_indices(self, i: int, start_frame: Optional[int] = None) -> np.ndarray:
        """Source frame index of every frame of clip ``i`` (started at ``start_frame`` instead, when given)."""
        start = int(self._start[i] if start_frame is None else start_frame)
        return clip_frame_indices(start, self.spec.clip_frames, float(self._step[i]))

    def read_raw(self, i: int, start_frame: Optional[int] = None) -> dict[str, np.ndarray]:
        """The raw frames of clip ``i`` per stream (``(T, H, W)`` or ``(T, H, W, 3)``), no crop or scaling."""
        rec = int(self._rec[i])
        frames = self.frame_indices(i, start_frame)
        return {s: self._reader(rec, s).read(frames) for s in self.streams}

    def crop_box(self, i: int) -> T.Box:
        """The crop of clip ``i`` (without augmentation) in the depth/IR image's pixels."""
        return self._box(i, int(self._start[i]), {})

    def _depth_hw(self, rec: int) -> tuple[int, int]:
        """Height and width of the depth/IR grid of recording ``rec``, where crop boxes are found."""
        for stream in ("ir", "depth"):
            if stream in self.streams:
                return self._reader(rec, stream).frame_shape[:2]
        # rgb only: the box is found on the depth grid all the same
        cal = (self._attrs[rec].get("calibration") or {}).get("depth", {})
        return int(cal.get("height", 424)), int(cal.get("width", 512))

    def _box(self, i: int, start: int, raw: Mapping[str, np.ndarray]) -> T.Box:
        """The crop of clip ``i`` (its frames ``raw``, read from ``start``) before augmentation."""
        rec = int(self._rec[i])
        shape_hw = self._depth_hw(rec)
        if self.crop is None:
            return T.fit_box(None, shape_hw, self.size)
        boxes = self._local()["boxes"]
        key = (rec, int(self._start[i]))  # the box of the unjittered clip: found once per process
        if key not in boxes:
            if "depth" in raw and start == key[1]:
                depth = raw["depth"][[0, len(raw["depth"]) // 2, -1]]
            else:  # from the unjittered clip's frames, so the box never depends on which jitter came first
                frames = self.frame_indices(i)
                depth = self._reader(rec, "depth").read(frames[[0, len(frames) // 2, -1]])
            if len(boxes) >= _BOX_CACHE_ENTRIES:
                boxes.clear()
            boxes[key] = T.patient_box(depth, target=self.crop)
        return T.fit_box(boxes[key], shape_hw, self.size, self.crop_margin)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip ``i`` as float32 ``(C, T, H, W)`` and its class index (int64)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"clip {i} is outside the dataset (0 to {n - 1})")
        i = int(i) % n
        aug = self.augment
        rec = int(self._rec[i])
        start = int(self._start[i])
        span = self.spec.span_frames(float(self._fps[rec]))
        if aug is not None and aug.temporal_jitter_frames:
            start = min(max(start + aug.draw_shift(), 0), int(self._num_frames[rec]) - span)
        raw = self.read_raw(i, start)
        box = self._box(i, start, raw)
        if aug is not None:
            box = aug.draw_box(box)
        target = int(self._target[i])
        flip = aug is not None and aug.flip_p > 0 and self._mirrored[i] >= 0 and aug.draw_flip()
        if flip:
            target = int(self._mirrored[i])
        parts = [self._stream(rec, s, raw[s], box, aug) for s in self.streams]
        clip = torch.cat(parts, dim=1)  # (T, C, H, W)
        if flip:
            clip = clip.flip(-1)
        if self.motion:
            clip = torch.cat([clip, T.frame_differences(clip)], dim=1)
        clip = T.standardize(clip.permute(1, 0, 2, 3), self.stats).contiguous()
        return clip, torch.tensor(target, dtype=torch.int64)

    def _stream(self, rec: int, stream: str, raw: np.ndarray, box: T.Box, aug: Optional[T.Augment]) -> torch.Tensor:
        attrs = self._attrs[rec]
        x = torch.from_numpy(raw)
        if stream == "rgb":
            x = x.permute(0, 3, 1, 2)
            cal = attrs.get("calibration") or {}
            if self.crop is not None and "depth" in cal and "rgb" in cal:
                box = T.map_box_to_rgb(box, cal)
            else:  # whole frames, or no calibration: the same fractions of the frame
                h, w = raw.shape[1:3]
                dh = int((cal.get("depth") or {}).get("height", h))
                dw = int((cal.get("depth") or {}).get("width", w))
                box = T.Box(box.y0 * h / dh, box.y1 * h / dh, box.x0 * w / dw, box.x1 * w / dw)
        else:
            x = x.unsqueeze(1)
        x = T.crop(x, box)
        mapping = T.stream_range(stream, attrs, self.ir_gamma)
        if stream == "depth":  # holes (0) must not blend into near values: map to [0, 1] first
            x = T.resize(T.to_unit(x, mapping, depth=True), self.size)
        else:  # scaling after resizing differs little (gamma) and touches far fewer pixels
            x = T.to_unit(T.resize(x, self.size), mapping)
        if aug is not None and stream != "depth":
            x = aug.jitter(x)
        return x

    def measure_stats(self, max_clips: int = 64) -> dict[str, tuple[float, float]]:
        """Mean and standard deviation of every channel over up to ``max_clips`` clips (evenly spread, no augmentation).

        Measure on the training part and pass the result as ``stats=`` to every part.
        """
        plain = self.subset(np.arange(len(self)), stats={c: (0.0, 1.0) for c in self.channels})
        picks = np.unique(np.linspace(0, len(self) - 1, min(max_clips, len(self))).round().astype(int))
        total = torch.zeros(len(self.channels), dtype=torch.float64)
        squares = torch.zeros_like(total)
        count = 0
        for i in picks:
            clip, _ = plain[int(i)]
            flat = clip.reshape(len(self.channels), -1).to(torch.float64)
            total += flat.sum(1)
            squares += (flat * flat).sum(1)
            count += flat.shape[1]
        mean = total / count
        std = (squares / count - mean * mean).clamp_min(1e-12).sqrt()
        return {c: (float(m), float(max(s, 1e-3))) for c, m, s in zip(self.channels, mean, std)}
