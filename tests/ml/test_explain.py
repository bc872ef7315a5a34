"""Saved explanations: the round trip, clear errors for files that are not one, and which cam frame a frame shows."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from deepepil.errors import ExplanationFileError, ValidationError
from deepepil.ml import Explanation, load_explanation


def _explanation(frames=(30, 32, 34, 36), hw=(4, 5)) -> Explanation:
    rng = np.random.default_rng(0)
    cam = rng.random((len(frames), *hw)).astype(np.float32)
    return Explanation(cam=cam, frames=np.asarray(frames), box_px=(10.0, 74.0, -8.0, 56.0), class_index=2,
                       class_name="head version (left)", score=0.73)


def test_an_explanation_round_trips(tmp_path):
    exp = _explanation()
    path = exp.save(tmp_path / "sub" / "30-38-head-version-left.npz")
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no partial file left
    back = load_explanation(path)
    np.testing.assert_allclose(back.cam, exp.cam, atol=1e-3)  # float16 on disk
    assert back.frames.tolist() == [30, 32, 34, 36] and back.box_px == exp.box_px
    assert (back.class_index, back.class_name, back.score) == (2, "head version (left)", pytest.approx(0.73))
    assert (back.start_frame, back.end_frame) == (30, 38)


def test_cam_index_follows_the_source_frames():
    exp = _explanation()
    assert exp.cam_index(30) == 0       # start
    assert exp.cam_index(33) == 1       # between two clip frames: the latest at or before it
    assert exp.cam_index(34) == 2
    assert exp.cam_index(36) == 3       # last clip frame
    assert exp.cam_index(37) == 3       # still the last frame's step
    assert exp.cam_index(38) is None    # end (exclusive)
    assert exp.cam_index(29) is None    # before start
    one = _explanation(frames=(5,))
    assert (one.cam_index(5), one.cam_index(6), one.end_frame) == (0, None, 6)


def test_a_bad_explanation_is_refused_on_construction():
    with pytest.raises(ValidationError, match="frames must be increasing"):
        _explanation(frames=(3, 2, 4))
    with pytest.raises(ValidationError, match=r"box_px .*y1 > y0"):
        Explanation(cam=np.zeros((1, 2, 2)), frames=[0], box_px=(5, 5, 0, 1), class_index=0, class_name="x", score=0)
    with pytest.raises(ValidationError, match=r"in \[0, 1\]"):
        Explanation(cam=np.full((1, 2, 2), 2.0), frames=[0], box_px=(0, 1, 0, 1), class_index=0, class_name="x",
                    score=0)


def test_unreadable_files_raise_explanation_file_error_naming_the_file(tmp_path):
    good = _explanation().save(tmp_path / "good.npz")
    missing = tmp_path / "gone.npz"
    with pytest.raises(ExplanationFileError, match=rf"{missing}.* does not exist.*--explain"):
        load_explanation(missing)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ExplanationFileError, match=rf"{truncated} cannot be read as an explanation"):
        load_explanation(truncated)

    foreign = tmp_path / "notes.npz"
    foreign.write_text("a text file, not an archive")
    with pytest.raises(ExplanationFileError, match=rf"{foreign} cannot be read as an explanation"):
        load_explanation(foreign)

    lacking = tmp_path / "lacking.npz"
    np.savez(lacking, frames=np.arange(4), box=np.zeros(4), class_index=0, class_name="x", score=0.5)
    with pytest.raises(ExplanationFileError, match=rf"{lacking} is not a DeepEpil explanation: it lacks cam"):
        load_explanation(lacking)

    invalid = tmp_path / "invalid.npz"
    np.savez(invalid, cam=np.zeros((2, 3, 3)), frames=np.arange(3), box=np.zeros(4), class_index=0,
             class_name="x", score=0.5)
    with pytest.raises(ExplanationFileError, match=rf"{invalid} holds an invalid explanation"):
        load_explanation(invalid)

    assert issubclass(ExplanationFileError, ValueError)
    with zipfile.ZipFile(good) as z:  # the good one is an ordinary .npz anyone can open
        assert "cam.npy" in z.namelist()
