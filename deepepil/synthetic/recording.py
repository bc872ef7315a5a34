"""A synthetic recording: a patient's scripted seizure, rendered frame by frame.

>>> from deepepil.synthetic.patient import make_cohort_profiles
>>> patient = make_cohort_profiles(2, seed=0)[0]
>>> rec = make_recording(patient, 0, seconds=2.0, size="tiny", seed=0)
>>> rec.streams["depth"].num_frames
60
>>> frame = next(rec.iter_frames("depth"))
>>> frame.data.shape, frame.data.dtype
((53, 64), dtype('uint16'))

Every frame is rendered on demand from ``(seed, patient, recording, frame)``, so
frames can be produced in any order and are bit-identical across runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from deepepil.recordings.calibration import default_calibration
from deepepil.recordings.source import STREAM_DTYPES, STREAM_NAMES, Frame, RecordingSource, \
    StreamInfo, frame_shape_for
from deepepil.synthetic.patient import PatientProfile
from deepepil.synthetic.render import Renderer
from deepepil.synthetic.scene import (
    BED_CENTER_XY_M,
    BED_LENGTH_M,
    BED_WIDTH_M,
    body_primitives,
    forward_kinematics,
    static_primitives,
)
from deepepil.synthetic.semiology import Script, make_script
from deepepil.synthetic.vocabulary import JOINT_NAMES

__all__ = ["FPS", "SIZES", "SyntheticRecording", "make_recording", "validate_size"]

#: Frame rate of every synthetic stream.
FPS = 30.0
#: Image sizes ``(width, height)`` of the depth/IR and colour cameras per size name.
SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "tiny": {"depth_size": (64, 53), "rgb_size": (96, 54)},
    "small": {"depth_size": (256, 212), "rgb_size": (480, 270)},
    "full": {"depth_size": (512, 424), "rgb_size": (1920, 1080)},
}
_TAG_FRAME = 3
_STREAM_TAG = {"rgb": 0, "ir": 1, "depth": 2}


def validate_size(size: str) -> dict[str, tuple[int, int]]:
    """Sizes of ``size``; ValueError listing the valid names otherwise."""
    try:
        return SIZES[size]
    except (KeyError, TypeError):
        raise ValueError(f"size {size!r} is not one of {tuple(SIZES)}") from None


class SyntheticRecording(RecordingSource):
    """A rendered synthetic recording with exact ground truth.

    Parameters
    ----------
    patient : PatientProfile
        Who lies in the bed.
    recording_index : int
        Which of the patient's recordings (each has its own seizure script).
    seconds : float
        Duration; ``num_frames = round(seconds * 30)``, at least 30.
    size : {"tiny", "small", "full"}
        Image sizes, see :data:`SIZES`.
    seed : int, optional
        Seed of the random streams; defaults to the patient's cohort seed.

    Attributes
    ----------
    name : str
        ``"<patient code>_S<recording index + 1, two digits>"``.
    script : Script
        The seizure, its MOIs and the per-frame pose.
    joints_m : numpy.ndarray
        ``(T, 14, 3)`` joint positions in depth-camera coordinates (metres).
    skeleton : Skeleton
        Joints plus the frames of the solids, for every frame.
    renderer : Renderer
        Ray caster and shaders of this recording's cameras.
    """

    def __init__(self, patient: PatientProfile, recording_index: int = 0, seconds: float = 10.0,
                 size: str = "tiny", seed: int | None = None) -> None:
        sizes = validate_size(size)
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self.patient = patient
        self.recording_index = int(recording_index)
        self.size = size
        self.seed = int(patient.seed if seed is None else seed)
        self.num_frames = int(round(seconds * FPS))
        self.fps = FPS
        self.name = f"{patient.code}_S{self.recording_index + 1:02d}"
        self.path = f"synthetic://{self.name}"

        self.calibration: dict[str, Any] = default_calibration(sizes["depth_size"],
                                                               sizes["rgb_size"])
        self.calibration.update(device="synthetic_kinect", is_default=False)
        self.streams = {}
        for stream in STREAM_NAMES:
            w, h = sizes["rgb_size" if stream == "rgb" else "depth_size"]
            self.streams[stream] = StreamInfo(stream, frame_shape_for(stream, h, w),
                                              STREAM_DTYPES[stream], self.num_frames, FPS)
        self.attrs: dict[str, Any] = {
            "synthetic": True, "patient_code": patient.code, "syndrome": patient.syndrome,
            "seed": self.seed, "size": size, "recording_index": self.recording_index,
            "device": "synthetic_kinect", "format": "synthetic",
        }

        self.script: Script = make_script(patient, self.recording_index, self.num_frames, FPS,
                                          self.seed)
        self.skeleton = forward_kinematics(patient, self.script.pose)
        self.joints_m: np.ndarray = self.skeleton.joints
        blanket_box = None
        if patient.blanket:
            top_x = float(self.skeleton.bed_origin[0]) + patient.blanket_top_m
            cx, cy = BED_CENTER_XY_M
            blanket_box = (top_x, cx + BED_LENGTH_M / 2, cy - BED_WIDTH_M / 2 - 0.03,
                           cy + BED_WIDTH_M / 2 + 0.03)
        self.renderer = Renderer(patient, self.calibration["depth"], self.calibration["rgb"],
                                  static_primitives(patient), blanket_box,
                                  noise_key=(self.seed, patient.index, self.recording_index))
        self._cache_index: int | None = None
        self._cache: dict[str, np.ndarray] = {}

    # -- frames ---------------------------------------------------------------------

    def _rng(self, frame_index: int, stream: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.patient.index, self.recording_index,
                                      _TAG_FRAME, int(frame_index), _STREAM_TAG[stream]])

    def render_frame(self, index: int, streams: Sequence[str] = STREAM_NAMES
                     ) -> dict[str, np.ndarray]:
        """Render ``streams`` of frame ``index``: ``{"rgb": (H,W,3) uint8, "ir", "depth": uint16}``.

        The last frame's images are kept, so asking for its streams one after another
        renders each only once; the arrays are read-only for that reason.
        """
        index = int(index)
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} is outside 0..{self.num_frames - 1} of {self.name}")
        unknown = set(streams) - set(STREAM_NAMES)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; valid: {STREAM_NAMES}")
        if index != self._cache_index:
            self._cache_index, self._cache = index, {}
        missing = [s for s in streams if s not in self._cache]
        if missing:
            self._render_into_cache(index, missing)
        return {s: self._cache[s] for s in streams}

    def _render_into_cache(self, index: int, missing: list[str]) -> None:
        prims = body_primitives(self.patient, self.skeleton, index)
        if "ir" in missing or "depth" in missing:
            gb = self.renderer.gbuffer("depth", prims)
            if "depth" in missing:
                self._cache["depth"] = self.renderer.depth_mm(gb, self._rng(index, "depth"))
            if "ir" in missing:
                self._cache["ir"] = self.renderer.ir(gb, self._rng(index, "ir"))
        if "rgb" in missing:
            gb = self.renderer.gbuffer("rgb", prims)
            self._cache["rgb"] = self.renderer.rgb(gb, self._rng(index, "rgb"))
        for array in self._cache.values():
            array.flags.writeable = False

    def iter_frames(self, stream: str) -> Iterator[Frame]:
        """Yield the frames of ``stream`` in order, rendering each on demand."""
        if stream not in self.streams:
            raise ValueError(f"stream {stream!r} is not one of {tuple(self.streams)}")
        for i in range(self.num_frames):
            yield Frame(i, i / FPS, self.render_frame(i, (stream,))[stream])

    # -- ground truth ---------------------------------------------------------------

    @property
    def ground_truth(self) -> dict[str, Any]:
        """Exact labels: seizure, MOIs, 3D joints per frame, calibration (JSON-serialisable).

        MOI and seizure intervals cover frames ``start_frame <= i < end_frame``;
        seconds are ``frame / fps``. Joints are skeleton centres (not surface points)
        in depth-camera coordinates, metres, rounded to 0.1 mm.
        """
        fps = self.fps
        seizure = self.script.seizure.to_dict(fps)
        return {
            "recording": self.name,
            "patient_code": self.patient.code,
            "syndrome": self.patient.syndrome,
            "localization": self.patient.localization,
            "lateralization": self.patient.lateralization,
            "seizure": seizure,
            "mois": [m.to_dict(fps) for m in self.script.mois],
            "fps": fps,
            "num_frames": self.num_frames,
            "seed": self.seed,
            "size": self.size,
            "recording_index": self.recording_index,
            "patient": self.patient.to_dict(),
            "calibration": self.calibration,
            "joint_names": list(JOINT_NAMES),
            "joints_m": np.round(self.joints_m, 4).tolist(),
        }


def make_recording(patient: PatientProfile, recording_index: int = 0, seconds: float = 10.0,
                   size: str = "tiny", seed: int | None = None) -> SyntheticRecording:
    """Build recording ``recording_index`` of ``patient``; see :class:`SyntheticRecording`."""
    return SyntheticRecording(patient, recording_index, seconds, size, seed)
