"""Inference end to end (train -> MLflow registry -> sliding windows -> suggestions), merging, Dask, Grad-CAM."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from deepepil.errors import AccessDeniedError, ExplanationFileError, ModelNotFoundError, ValidationError
from deepepil.labels import admin, connect
from deepepil.ml import ClipDataset, grad_cam, load_explanation, predict, predict_many, save_explanations, train
from deepepil.cli import main as deepepil_main
from deepepil.ml.inference import merge_windows, safe_name, window_starts
from deepepil.ml.metrics import prob_column
from deepepil.recordings import open_recording

REGION = "left upper limb"
SMALL = {"streams": ["ir", "depth"], "clip_frames": 8, "size": [32, 32]}


@pytest.fixture(scope="module")
def env(cohort, tmp_path_factory):
    """A copy of the cohort's label database with a data scientist (dan) and a clinician (ann), and a registry."""
    folder = tmp_path_factory.mktemp("predict")
    shutil.copyfile(cohort.url.split("sqlite:///", 1)[1], folder / "labels.sqlite")
    url = f"sqlite:///{folder / 'labels.sqlite'}"
    admin.add_user("dan", "data_scientist", url=url)
    admin.add_user("ann", "clinician", cohort.clinic, url=url)
    return {"url": url, "folder": folder, "tracking": f"sqlite:///{folder / 'mlflow.db'}"}


def _config(env, name: str, target: str, model: str = "r2plus1d", **data) -> dict:
    return {
        "experiment": "predict-tests", "run_name": name, "output_dir": str(env["folder"] / "runs"),
        "data": {"snapshot": "ml-tests", "url": env["url"], "user": "dan", "target": target, **SMALL, **data},
        "model": {"name": model, "options": {"width": 0.125}},
        "split": {"method": "none", "validation": "none"},
        "train": {"epochs": 1, "batch_size": 8, "early_stopping": None},
        "tracking": {"uri": env["tracking"], "register": name, "alias": "candidate"},
    }


@pytest.fixture(scope="module")
def moi_model(env):
    """A left-upper-limb MOI model: 1 epoch on every clip of the recordings, registered as moi-tiny@candidate."""
    return train(_config(env, "moi-tiny", f"moi:{REGION}", window="recording"), progress=False)


@pytest.fixture(scope="module")
def side_model(env):
    """A head/face MOI model with the side in its classes ("head version (left)"), registered as moi-side@candidate."""
    return train(_config(env, "moi-side", "moi:head/face", window="recording", laterality_in_class=True),
                 progress=False)


@pytest.fixture
def fresh_url(cohort, tmp_path) -> str:
    """A copy of the cohort's label database without suggestions, with dan (data scientist) and ann (clinician)."""
    path = tmp_path / "fresh-labels.sqlite"
    shutil.copyfile(cohort.url.split("sqlite:///", 1)[1], path)
    url = f"sqlite:///{path}"
    admin.add_user("dan", "data_scientist", url=url)
    admin.add_user("ann", "clinician", cohort.clinic, url=url)
    return url


def test_train_register_predict_publishes_suggestions(cohort, env, moi_model):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["tracking"], registry_uri=env["tracking"])
    run = client.get_run(moi_model.run_id)
    assert run.data.params["data.target"] == f"moi:{REGION}" and "final/train_loss" in run.data.metrics
    assert run.inputs.dataset_inputs[0].dataset.digest == cohort.snapshot.content_hash[:32]
    assert client.get_model_version_by_alias("moi-tiny", "candidate").run_id == moi_model.run_id

    rid = next(iter(cohort.recording_ids.values()))
    p = predict("moi-tiny@candidate", rid, env["url"], user="dan", tracking_uri=env["tracking"], threshold=0.0)
    labels = [c for c in moi_model.classes if c != "none"]
    # threshold 0: every window counts for every class, so each class becomes one suggestion over everything
    assert p.model_version == "moi-tiny:1" and p.added == len(labels) == len(p.suggestions)
    assert sorted(p.suggestions["label"]) == sorted(labels) and (p.suggestions["region"] == REGION).all()
    assert (p.suggestions["start_frame"] == 0).all()
    assert (p.suggestions["end_frame"] == p.windows["end_frame"].max()).all()
    with connect(env["url"], user="ann") as store:  # the clinician sees them, pending
        assert p.windows["end_frame"].max() == store.recording(rid).num_frames  # the last window ends the recording
        shown = store.suggestions(rid)
        assert sorted(shown["id"]) == sorted(p.suggestions["id"])
        assert set(shown["model_version"]) == {"moi-tiny:1"} and set(shown["decision"]) == {"pending"}
        assert set(shown["created_by"]) == {"dan"}
        assert shown["score"].between(0, 1).all()
    # publishing again adds nothing
    again = predict("moi-tiny@candidate", rid, env["url"], user="dan", tracking_uri=env["tracking"], threshold=0.0)
    assert again.added == 0 and again.existing == len(labels)
    np.testing.assert_allclose(again.windows[[prob_column(c) for c in moi_model.classes]],
                               p.windows[[prob_column(c) for c in moi_model.classes]], atol=1e-6)


def test_windows_are_cut_as_the_model_was_trained(cohort, env, moi_model):
    rid = next(iter(cohort.recording_ids.values()))
    with connect(env["url"], user="dan") as store:
        before = len(store.suggestions(rid))
        p = predict("moi-tiny:1", rid, env["url"], user="dan", tracking_uri=env["tracking"], publish=False,
                    threshold=0.0)
        assert len(store.suggestions(rid)) == before and p.added == 0  # computed, not published
    assert len(p.suggestions) == len(moi_model.classes) - 1 and len(p.windows) > 3
    span = int(p.windows["end_frame"].iloc[0] - p.windows["start_frame"].iloc[0])
    assert span == 15 and p.windows["start_frame"].diff().dropna().iloc[0] == 7  # the training stride: half a span
    # the same clips through the training dataset, standardized with the final model's statistics
    info = moi_model.inference
    ds = ClipDataset.from_database(cohort.snapshot, env["url"], user="dan", target=f"moi:{REGION}",
                                   window="recording", streams=("ir", "depth"), clip_frames=8, size=(32, 32),
                                   stats={c: tuple(v) for c, v in info["stats"].items()})
    name = ds.recordings.set_index("storage_uri")["name"]
    rows = ds.index[ds.index["storage_uri"].map(name) == next(n for n, r in cohort.recording_ids.items()
                                                                if r == rid)]
    model = moi_model.model
    windows = p.windows.set_index("start_frame")
    for i in rows.index[:4]:
        clip, _ = ds[int(i)]
        with torch.no_grad():
            expected = torch.softmax(model(clip.unsqueeze(0)), 1)[0].numpy()
        got = windows.loc[int(ds.index.loc[i, "start_frame"]), [prob_column(c) for c in moi_model.classes]]
        np.testing.assert_allclose(got.to_numpy(float), expected, atol=1e-5)


def test_who_may_publish_and_what(cohort, env, moi_model):
    rid = next(iter(cohort.recording_ids.values()))
    with pytest.raises(AccessDeniedError, match="ann is a clinician: suggestions are published by data_scientist"):
        predict("moi-tiny@candidate", rid, env["url"], user="ann", tracking_uri=env["tracking"])
    with pytest.raises(ModelNotFoundError, match=r"no alias 'production' of model 'moi-tiny'.*moi-tiny \(@candidate"):
        predict("moi-tiny@production", rid, env["url"], user="dan", tracking_uri=env["tracking"])
    with pytest.raises(ValidationError, match="threshold must be from 0 to 1"):
        predict("moi-tiny@candidate", rid, env["url"], user="dan", tracking_uri=env["tracking"], threshold=1.5)
    train(_config(env, "syndrome-tiny", "syndrome"), progress=False)
    with pytest.raises(ValidationError, match=r"predicts 'syndrome' \(a class per recording\); suggestions are"):
        predict("syndrome-tiny@candidate", rid, env["url"], user="dan", tracking_uri=env["tracking"])
    p = predict("syndrome-tiny@candidate", rid, env["url"], user="dan", tracking_uri=env["tracking"], publish=False)
    assert list(p.suggestions.columns[:2]) == ["region", "label"] and {"prob:FLE", "prob:TLE"} <= set(p.windows)


def test_predict_command_and_many_recordings_on_dask(cohort, env, moi_model, capsys, tmp_path):
    rids = sorted(cohort.recording_ids.values())[:2]
    code = deepepil_main(["predict", "--model", "moi-tiny@candidate", "--recording", str(rids[0]),
                          "--url", env["url"], "--user", "dan", "--tracking-uri", env["tracking"],
                          "--threshold", "0", "--dry-run"])
    assert code == 0 and f"recording {rids[0]}:" in capsys.readouterr().out
    table = predict_many("moi-tiny@candidate", rids, env["url"], user="dan", tracking_uri=env["tracking"],
                         threshold=0.0, n_workers=1, progress=False, explain_dir=tmp_path / "explanations")
    labels = len(moi_model.classes) - 1
    assert list(table["recording_id"]) == rids and (table["suggestions"] == labels).all()
    assert (table["model_version"] == "moi-tiny:1").all()
    # the suggestions published here have an explanation; those an earlier test published keep none
    assert (table["explained"] == table["added"]).all()
    with connect(env["url"], user="dan") as store:
        for rid in rids:
            shown = store.suggestions(rid, model_version="moi-tiny:1")
            assert len(shown) == labels
            for uri in shown["explanation_uri"].dropna():
                assert uri.startswith(str((tmp_path / "explanations" / "moi-tiny-v1" / f"rec{rid}").resolve()))
                assert load_explanation(uri).class_name in moi_model.classes
    with pytest.raises(ModelNotFoundError):
        predict_many("nothing@candidate", rids, env["url"], user="dan", tracking_uri=env["tracking"])


# --- suggestions with explanations -----------------------------------------------------------------


def _class_of(suggestion) -> str:
    side = suggestion.laterality
    return suggestion.label if not isinstance(side, str) else f"{suggestion.label} ({side})"


def test_every_new_suggestion_gets_its_grad_cam(cohort, env, side_model, fresh_url, tmp_path):
    rid = sorted(cohort.recording_ids.values())[0]
    assert any("(" in c for c in side_model.classes), side_model.classes  # "head version (left)" and the like
    # a threshold that splits the runs of a class with a side: that class's median probability
    probe = predict("moi-side@candidate", rid, fresh_url, user="dan", tracking_uri=env["tracking"], publish=False)
    sided = max((c for c in side_model.classes if "(" in c), key=lambda c: probe.windows[prob_column(c)].mean())
    threshold = float(probe.windows[prob_column(sided)].median())
    shared = tmp_path / "shared" / "explanations"

    p = predict("moi-side@candidate", rid, fresh_url, user="dan", tracking_uri=env["tracking"],
                threshold=threshold, explain_dir=shared)
    assert p.added == len(p.suggestions) >= 1 and p.suggestions["explanation_uri"].map(bool).all()
    assert sided in set(map(_class_of, p.suggestions.itertuples(index=False)))  # e.g. label "head version", side "left"
    folder = shared.resolve() / "moi-side-v1" / f"rec{rid}"
    with connect(fresh_url, user="ann") as store:  # what the clinician's app reads
        shown = store.suggestions(rid).set_index("id")
        ir_hw = open_recording(store.recording(rid).storage_uri)["ir"].shape[1:3]
    assert sorted(shown.index) == sorted(p.suggestions["id"])
    windows = p.windows
    for s in p.suggestions.itertuples(index=False):
        uri = shown.loc[s.id, "explanation_uri"]
        assert uri == s.explanation_uri == str(folder / f"{s.start_frame}-{s.end_frame}-{safe_name(_class_of(s))}.npz")
        assert " " not in uri.rsplit("/", 1)[1] and "(" not in uri
        exp = load_explanation(uri)
        assert exp.class_name == _class_of(s) and exp.class_index == side_model.classes.index(exp.class_name)
        assert s.start_frame <= exp.frames.min() and exp.frames.max() < s.end_frame
        assert exp.cam.shape == (8, 32, 32) and 0 <= exp.cam.min() and exp.cam.max() <= 1
        y0, y1, x0, x1 = exp.box_px
        assert y0 < ir_hw[0] and y1 > 0 and x0 < ir_hw[1] and x1 > 0  # inside or overlapping the image
        # the run's most probable window: its probability is the suggestion's score
        run = windows[(windows["start_frame"] >= s.start_frame) & (windows["end_frame"] <= s.end_frame)]
        peak = run.loc[run[prob_column(exp.class_name)].idxmax()]
        assert exp.start_frame == int(peak["start_frame"])
        assert exp.score == pytest.approx(s.score, abs=1e-4)

    # again: nothing new, so nothing is recomputed or rewritten, and the stored paths come back
    written = {u: Path(u).stat().st_mtime_ns for u in p.suggestions["explanation_uri"]}
    again = predict("moi-side@candidate", rid, fresh_url, user="dan", tracking_uri=env["tracking"],
                    threshold=threshold, explain_dir=shared)
    assert again.added == 0 and again.existing == len(p.suggestions)
    assert list(again.suggestions["explanation_uri"]) == list(p.suggestions["explanation_uri"])
    assert {u: Path(u).stat().st_mtime_ns for u in written} == written
    assert sorted(f.name for f in folder.iterdir()) == sorted(Path(u).name for u in written)  # no probe left


def test_explanations_need_a_3d_model_and_a_writable_folder(cohort, env, fresh_url, tmp_path, monkeypatch):
    rid = sorted(cohort.recording_ids.values())[0]
    train(_config(env, "moi-2d", f"moi:{REGION}", model="cnn2d", window="recording"), progress=False)

    def no_windows(*args, **kwargs):
        raise AssertionError("a window was computed before the checks")

    monkeypatch.setattr("deepepil.ml.training.predict_probs", no_windows)
    with connect(fresh_url, user="dan") as store:
        before = store.suggestions()
    target = tmp_path / "explanations"
    with pytest.raises(ValidationError, match=r"explanations need a 3D model \(i3d or r2plus1d\).*model moi-2d:1 "
                                              r"is a 'cnn2d'"):
        predict("moi-2d@candidate", rid, fresh_url, user="dan", tracking_uri=env["tracking"], threshold=0.0,
                explain_dir=target)
    with pytest.raises(ValidationError, match=r"explanations need a 3D model.*moi-2d:1 is a 'cnn2d'"):
        predict_many("moi-2d@candidate", [rid], fresh_url, user="dan", tracking_uri=env["tracking"],
                     threshold=0.0, explain_dir=target, progress=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExplanationFileError, match=r"cannot write explanations to the folder .*a-file/moi-tiny-v1"):
        predict("moi-tiny@candidate", rid, fresh_url, user="dan", tracking_uri=env["tracking"], threshold=0.0,
                explain_dir=blocker)
    with pytest.raises(ExplanationFileError, match=r"cannot write explanations to the folder .*a-file"):
        predict_many("moi-tiny@candidate", [rid], fresh_url, user="dan", tracking_uri=env["tracking"],
                     explain_dir=blocker, progress=False)
    deep = tmp_path.joinpath(*["x" * 200] * 5)
    with pytest.raises(ExplanationFileError, match=r"is too long.*at most 1000 characters"):
        predict("moi-tiny@candidate", rid, fresh_url, user="dan", tracking_uri=env["tracking"], explain_dir=deep)
    with connect(fresh_url, user="dan") as store:
        pd.testing.assert_frame_equal(store.suggestions(), before)
    assert not target.exists() and not (tmp_path / ("x" * 200)).exists()


def test_predict_command_with_explanations(cohort, env, moi_model, fresh_url, tmp_path, capsys):
    rid = sorted(cohort.recording_ids.values())[-1]
    code = deepepil_main(["predict", "--model", "moi-tiny@candidate", "--recording", str(rid), "--url", fresh_url,
                          "--user", "dan", "--tracking-uri", env["tracking"], "--threshold", "0",
                          "--explain", str(tmp_path / "cams")])
    out = capsys.readouterr().out
    labels = len(moi_model.classes) - 1
    folder = (tmp_path / "cams").resolve() / "moi-tiny-v1" / f"rec{rid}"
    assert code == 0 and f"explanations: {labels} of {labels} suggestion(s) have one, in {folder}" in out
    assert len(list(folder.glob("*.npz"))) == labels


# --- merging windows into suggestions ----------------------------------------------------------------


def _windows(probs: dict[str, list[float]], span: int = 10, stride: int = 5) -> pd.DataFrame:
    n = len(next(iter(probs.values())))
    starts = np.arange(n) * stride
    table = pd.DataFrame({"start_frame": starts, "end_frame": starts + span})
    for cls, values in probs.items():
        table[prob_column(cls)] = values
    return table


def test_consecutive_windows_above_the_threshold_merge():
    w = _windows({"clonic": [0.1, 0.7, 0.9, 0.6, 0.2, 0.8], "none": [0.9, 0.3, 0.1, 0.4, 0.8, 0.2]})
    merged = merge_windows(w, ["clonic", "none"], threshold=0.5)
    assert merged[["class", "start_frame", "end_frame", "windows"]].values.tolist() == [
        ["clonic", 5, 25, 3], ["clonic", 25, 35, 1]]
    assert merged["score"].tolist() == [0.9, 0.8]  # the highest probability of the run
    assert merge_windows(w, ["clonic", "none"], threshold=0.95).empty
    # windows that do not touch stay apart even when both are above the threshold
    gap = _windows({"clonic": [0.9, 0.9], "none": [0.1, 0.1]}, span=4, stride=10)
    assert len(merge_windows(gap, ["clonic", "none"], 0.5)) == 2
    with pytest.raises(ValidationError, match="threshold must be from 0 to 1"):
        merge_windows(w, ["clonic"], -0.1)


def test_window_starts_cover_the_recording():
    assert window_starts(100, 15, 7).tolist()[:3] == [0, 7, 14] and window_starts(100, 15, 7)[-1] == 85
    assert window_starts(15, 15, 7).tolist() == [0] and window_starts(14, 15, 7).size == 0
    assert window_starts(29, 15, 7).tolist() == [0, 7, 14]


# --- Grad-CAM ---------------------------------------------------------------------------------


class _Toy(nn.Module):
    """Features = the clip itself (rectified); class 1 is 'bright', class 0 'dark'."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Identity()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-1.0], [1.0]]))
            self.fc.bias.zero_()

    def features(self, x):
        return torch.relu(self.conv(x))

    def forward(self, x):
        return self.fc(self.dropout(torch.flatten(self.avgpool(self.features(x)), 1)))


def test_grad_cam_finds_where_and_when():
    clip = torch.zeros(1, 8, 16, 16)
    clip[0, 3, 5:9, 10:14] = 1.0
    cam = grad_cam(_Toy(), clip, class_index=1)
    assert cam.shape == (8, 16, 16) and cam.dtype == np.float32
    assert cam.max() == pytest.approx(1.0) and cam[3, 5:9, 10:14].min() == pytest.approx(1.0)
    assert cam[0].max() == 0 and cam[7].max() == 0 and cam[3, :4, :8].max() == 0
    assert grad_cam(_Toy(), clip, class_index=0).max() == 0  # nothing speaks for "dark"
    from deepepil.ml import build_model

    with pytest.raises(ValidationError, match=r"needs a 3D model.*'cnn2d' has none"):
        grad_cam(build_model("cnn2d", 2, 1, width=0.125), clip)


def test_explanations_are_saved_per_clip(cohort, env, moi_model, tmp_path):
    ds = ClipDataset.from_database(cohort.snapshot, env["url"], user="dan", target=f"moi:{REGION}",
                                   window="recording", streams=("ir", "depth"), clip_frames=8, size=(32, 32))
    table = save_explanations(moi_model.model, ds, [0, 5], tmp_path / "cam")
    assert list(table["clip"]) == [0, 5] and table["score"].between(0, 1).all()
    with np.load(table["npz"][0]) as saved:
        assert saved["cam"].shape == (8, 32, 32) and saved["cam"].dtype == np.float16
        assert 0 <= saved["cam"].min() and saved["cam"].max() <= 1
        assert saved["frames"].tolist() == list(range(int(ds.index.start_frame[0]),
                                                      int(ds.index.start_frame[0]) + 16, 2))
        y0, y1, x0, x1 = saved["box"]
        assert y1 > y0 and x1 > x0 and str(saved["class_name"]) in ds.classes
    from PIL import Image

    with Image.open(table["png"][1]) as image:
        assert image.size == (8 * 32, 32) and image.mode == "RGB"
