"""Write a synthetic cohort in the acquisition formats, with ground truth beside it.

>>> import deepepil
>>> paths = deepepil.synthesize_cohort("demo/", patients=4, seconds=20)  # doctest: +SKIP

For every recording ``NAME`` (``"<patient code>_S01"``, ...) ``out_dir`` receives
``NAME.mkv`` (Azure Kinect-style MKV), ``NAME/`` (frame folder: ``rgb.mp4`` and 16-bit
PNGs), ``NAME.truth.json`` (see :attr:`SyntheticRecording.ground_truth`), and one row
in ``cohort.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from deepepil.recordings.source import Frame, RecordingSource
from deepepil.synthetic.patient import make_cohort_profiles
from deepepil.synthetic.recording import FPS, SyntheticRecording, validate_size
from deepepil.synthetic.semiology import MIN_FRAMES

__all__ = ["FORMATS", "COHORT_COLUMNS", "synthesize_cohort"]

#: Acquisition formats the cohort can be written in.
FORMATS: tuple[str, ...] = ("mkv", "folder")
#: Columns of ``cohort.csv``.
COHORT_COLUMNS: tuple[str, ...] = (
    "recording", "patient_code", "syndrome", "localization", "lateralization", "seizure_type",
    "onset_seconds", "offset_seconds", "num_frames", "files",
)


class _CountingSource(RecordingSource):
    """Passes a source through, advancing a progress bar for every frame read."""

    def __init__(self, source: RecordingSource, bar: Any) -> None:
        self._source = source
        self._bar = bar
        self.path = source.path
        self.streams = source.streams
        self.calibration = source.calibration
        self.attrs = source.attrs

    def iter_frames(self, stream: str) -> Iterator[Frame]:
        for frame in self._source.iter_frames(stream):
            self._bar.update(1)
            yield frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


def _targets(out_dir: Path, name: str, formats: Sequence[str]) -> dict[str, Path]:
    paths = {"truth": out_dir / f"{name}.truth.json"}
    if "mkv" in formats:
        paths["mkv"] = out_dir / f"{name}.mkv"
    if "folder" in formats:
        paths["folder"] = out_dir / name
    return paths


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def synthesize_cohort(
    out_dir: str | os.PathLike,
    patients: int = 2,
    seconds: float = 10.0,
    seed: int = 0,
    size: str = "tiny",
    recordings_per_patient: int = 1,
    formats: Sequence[str] = ("mkv", "folder"),
    progress: bool = True,
) -> list[Path]:
    """Generate ``patients`` synthetic patients and write their recordings.

    Parameters
    ----------
    out_dir : path
        Folder to write into (created if missing). Existing files are never
        overwritten.
    patients : int
        Number of patients; syndromes and sides are balanced
        (:func:`~deepepil.synthetic.patient.make_cohort_profiles`).
    seconds : float
        Duration of each recording (at least 1 s).
    seed : int
        Seed of the whole cohort: the same arguments write identical frames.
    size : {"tiny", "small", "full"}
        Image sizes (see :data:`~deepepil.synthetic.recording.SIZES`).
    recordings_per_patient : int
        Seizures recorded per patient; each has its own script.
    formats : sequence of {"mkv", "folder"}
        Formats to write each recording in.
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    list of Path
        One path per recording: the MKV file when ``"mkv"`` is written, else the
        frame folder.

    Raises
    ------
    FileExistsError
        When a file this call would write exists already (nothing is written).
    ValueError
        For an unknown size or format, or a count or duration out of range.
    """
    validate_size(size)
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty selection of {FORMATS}, got {formats!r}")
    if patients < 1 or recordings_per_patient < 1:
        raise ValueError(f"patients and recordings_per_patient must be >= 1, got {patients} "
                         f"and {recordings_per_patient}")
    num_frames = round(seconds * FPS)
    if num_frames < MIN_FRAMES:
        raise ValueError(f"seconds must be >= {MIN_FRAMES / FPS:g}, got {seconds}")

    out = Path(out_dir)
    profiles = make_cohort_profiles(patients, seed)
    plan = [(p, k) for p in profiles for k in range(recordings_per_patient)]
    names = [f"{p.code}_S{k + 1:02d}" for p, k in plan]
    csv_path = out / "cohort.csv"
    existing = [str(path) for name in names for path in _targets(out, name, formats).values()
                if path.exists()] + ([str(csv_path)] if csv_path.exists() else [])
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]} already exists{more}; synthesize_cohort never "
                              "overwrites: choose another out_dir or remove the old files")

    writers = {}
    if "mkv" in formats:
        from deepepil.recordings.readers.azure_kinect import write_azure_kinect_mkv

        writers["mkv"] = write_azure_kinect_mkv
    if "folder" in formats:
        from deepepil.recordings.readers.frames import write_frames_folder

        writers["folder"] = write_frames_folder

    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    primary: list[Path] = []
    total = len(plan) * num_frames * 3 * len(formats)
    with tqdm(total=total, unit="frame", desc="synthesizing", disable=not progress) as bar:
        for (profile, k), name in zip(plan, names):
            rec = SyntheticRecording(profile, k, seconds, size, seed)
            targets = _targets(out, name, formats)
            written: dict[str, Path] = {}
            try:
                for fmt in formats:
                    bar.set_postfix_str(f"{name} {fmt}")
                    written[fmt] = Path(writers[fmt](_CountingSource(rec, bar), targets[fmt]))
                truth = rec.ground_truth
                _write_text_atomic(targets["truth"], json.dumps(truth))
            except BaseException:
                for path in targets.values():
                    _remove(path)
                raise
            written["truth"] = targets["truth"]
            primary.append(written.get("mkv", written.get("folder")))
            seizure = truth["seizure"]
            rows.append({
                "recording": name, "patient_code": profile.code, "syndrome": profile.syndrome,
                "localization": profile.localization, "lateralization": profile.lateralization,
                "seizure_type": seizure["type"], "onset_seconds": seizure["onset_seconds"],
                "offset_seconds": seizure["offset_seconds"], "num_frames": rec.num_frames,
                "files": ";".join(
                    p.name + ("/" if p.is_dir() else "") for p in written.values()),
            })
    buffer = io.StringIO()
    table = csv.DictWriter(buffer, fieldnames=COHORT_COLUMNS, lineterminator="\n")
    table.writeheader()
    table.writerows(rows)
    _write_text_atomic(csv_path, buffer.getvalue())
    return primary
