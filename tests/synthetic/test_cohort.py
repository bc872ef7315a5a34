"""synthesize_cohort: the acquisition formats, ground truth and cohort table on disk."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from deepepil.synthetic.cohort import COHORT_COLUMNS, synthesize_cohort
from deepepil.synthetic.patient import make_cohort_profiles
from deepepil.synthetic.recording import make_recording




def test_invalid_arguments_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="'mkv', 'folder'"):
        synthesize_cohort(tmp_path / "a", formats=("mp4",), progress=False)
    with pytest.raises(ValueError, match="'tiny', 'small', 'full'"):
        synthesize_cohort(tmp_path / "a", size="medium", progress=False)
    with pytest.raises(ValueError, match="patients"):
        synthesize_cohort(tmp_path / "a", patients=0, progress=False)
    with pytest.raises(ValueError, match="seconds"):
        synthesize_cohort(tmp_path / "a", seconds=0.2, progress=False)
    assert not (tmp_path / "a").exists()


def test_existing_files_are_never_overwritten(tmp_path):
    code = make_cohort_profiles(2, seed=0)[1].code
    existing = tmp_path / f"{code}_S01.truth.json"
    existing.write_text("keep me")
    with pytest.raises(FileExistsError, match=re.escape(str(existing))):
        synthesize_cohort(tmp_path, patients=2, seconds=1.0, progress=False)
    assert existing.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing.name]


def test_cohort_is_written_in_every_format(tmp_path):
    from deepepil.recordings.readers import open_source

    paths = synthesize_cohort(tmp_path, patients=2, seconds=1.0, seed=3, size="tiny",
                              recordings_per_patient=2, progress=False)
    profiles = make_cohort_profiles(2, seed=3)
    names = [f"{p.code}_S{k:02d}" for p in profiles for k in (1, 2)]
    assert paths == [tmp_path / f"{n}.mkv" for n in names]
    for name in names:
        assert (tmp_path / f"{name}.mkv").is_file()
        assert (tmp_path / name).is_dir()
        assert (tmp_path / f"{name}.truth.json").is_file()

    with open(tmp_path / "cohort.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["recording"] for r in rows] == names
    assert tuple(rows[0]) == COHORT_COLUMNS
    assert {r["syndrome"] for r in rows} == {"frontal", "temporal"}

    rec = make_recording(profiles[0], 1, seconds=1.0, size="tiny", seed=3)
    truth = json.loads((tmp_path / f"{names[1]}.truth.json").read_text())
    assert truth == json.loads(json.dumps(rec.ground_truth))
    assert float(rows[1]["onset_seconds"]) == pytest.approx(truth["seizure"]["onset_seconds"])
    assert int(rows[1]["num_frames"]) == 30

    for path in (tmp_path / f"{names[1]}.mkv", tmp_path / names[1]):
        source = open_source(path)
        for stream in ("depth", "ir"):  # lossless streams round-trip bit-exactly
            frames = list(source.iter_frames(stream))
            assert len(frames) == 30
            for i in (0, 29):
                np.testing.assert_array_equal(frames[i].data, rec.render_frame(i)[stream])
        source.close()

    with pytest.raises(FileExistsError):
        synthesize_cohort(tmp_path, patients=2, seconds=1.0, seed=3, progress=False)


def test_folder_only_returns_folders(tmp_path):
    paths = synthesize_cohort(tmp_path, patients=1, seconds=1.0, formats=("folder",),
                              progress=False)
    assert len(paths) == 1 and paths[0].is_dir()
    assert not list(tmp_path.glob("*.mkv"))
