"""Training and evaluation on the tiny cohort: folds, metrics, plots, MLflow, early stopping, resume, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepepil.errors import (
    ConfigError, CorruptWeightsError, MissingStreamError, NotFoundError, ResumeError, SingleClassError,
    ValidationError, WeightsMismatchError,
)
from deepepil.ml import load_config, train
from deepepil.cli import main as deepepil_main
from deepepil.ml.metrics import prob_column

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def copy_cohort(cohort, folder: Path) -> str:
    """A private copy of the cohort's label database (the recording stores are shared, read-only)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cohort.url.split("sqlite:///", 1)[1], folder / "labels.sqlite")
    return f"sqlite:///{folder / 'labels.sqlite'}"


def tiny(url: str, folder: Path, **changes) -> dict:
    """A tiny syndrome configuration: 8-frame 32x32 IR + depth clips, R(2+1)D at an eighth of its width."""
    config = {
        "experiment": "tests", "output_dir": str(folder / "runs"), "seed": 0,
        "data": {"snapshot": "ml-tests", "url": url, "user": "root", "streams": ["ir", "depth"], "clip_frames": 8,
                 "size": [32, 32]},
        "model": {"name": "r2plus1d", "options": {"width": 0.125}},
        "train": {"epochs": 2, "batch_size": 4, "early_stopping": {"patience": 1}},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}", "register": "syndrome-tiny"},
    }
    return load_config(config).replace(**changes).to_dict()


@pytest.fixture(scope="module")
def work(cohort, tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    return folder, copy_cohort(cohort, folder)


@pytest.fixture(scope="module")
def lopo(work):
    """Leave-one-patient-out over the four patients, tracked and registered."""
    folder, url = work
    return train(tiny(url, folder, run_name="lopo"), progress=False)


def test_lopo_metrics_per_fold_and_patient(cohort, lopo):
    r = lopo
    patients = sorted(t["patient_code"] for t in cohort.truth.values())
    assert r.classes == ["FLE", "TLE"]
    assert sorted(r.folds["fold"]) == patients and (r.folds["patients"] == 1).all()
    assert sorted(r.patients["patient_code"]) == patients
    # every clip is tested once, by the fold that left its patient out
    pred = r.evaluation.predictions
    assert sorted(pred["clip"]) == list(range(len(pred))) and (pred["fold"] == pred["patient_code"]).all()
    assert int(r.confusion.to_numpy().sum()) == len(pred) == int(r.overall["clips"])
    assert list(r.confusion.index) == r.classes == list(r.confusion.columns)
    # the tables agree with scikit-learn on the pooled predictions
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    y = pred["target_index"].to_numpy()
    prob = pred[[prob_column(c) for c in r.classes]].to_numpy()
    assert r.overall["f1_macro"] == pytest.approx(f1_score(y, prob.argmax(1), average="macro", zero_division=0))
    assert r.overall["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, prob.argmax(1)))
    assert r.overall["roc_auc"] == pytest.approx(roc_auc_score(y, prob[:, 1]))
    np.testing.assert_allclose(prob.sum(1), 1, atol=1e-5)
    # a LOPO fold holds one patient of one class: its AUC is undefined, its vote is right or wrong
    assert r.folds["roc_auc"].isna().all()
    truth = {t["patient_code"]: t["seizure"]["localization"] for t in cohort.truth.values()}
    assert dict(zip(r.patients["patient_code"], r.patients["true"])) == truth
    assert r.overall["patient_accuracy"] == pytest.approx(r.patients["correct"].mean())
    # plots and tables on disk
    ev = r.run_dir / "evaluation"
    for name in ("confusion_matrix.png", "roc.png"):
        assert (ev / name).read_bytes()[:8] == PNG
    table = pd.read_csv(ev / "fold_metrics.csv")
    assert sorted(table["fold"]) == patients
    assert r.evaluation.plot_confusion(normalize=True).axes  # row fractions work too


def test_history_checkpoints_and_the_final_model(lopo):
    r = lopo
    assert set(r.history["fold"]) == set(r.folds["fold"]) | {"final"}
    for fold, part in r.history.groupby("fold"):
        assert list(part["epoch"]) == list(range(len(part))) and 1 <= len(part) <= 2
        ckpt = torch.load(r.run_dir / "checkpoints" / fold / "last.pt", weights_only=False)
        assert ckpt["state"]["epoch"] == len(part) - 1 and set(ckpt) >= {"model", "optimizer", "scaler"}
    folds = r.epochs[r.epochs["fold"] != "final"]
    final_epochs = int(r.epochs.set_index("fold").loc["final", "epochs_run"])
    assert final_epochs == max(1, int(round(float(np.median(folds["best_epoch"] + 1)))))
    assert r.model is not None and not r.model.training and r.registered.label == "syndrome-tiny:1"
    assert r.inference["classes"] == r.classes and r.inference["clip"]["clip_frames"] == 8
    assert json.loads((r.run_dir / "state.json").read_text())["status"] == "finished"


def test_mlflow_run_records_params_metrics_artifacts_code_and_snapshot(cohort, lopo):
    from mlflow import MlflowClient

    r = lopo
    client = MlflowClient(tracking_uri=r.tracking_uri, registry_uri=r.tracking_uri)
    run = client.get_run(r.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "lopo"
    params = run.data.params
    assert params["data.clip_frames"] == "8" and params["model.name"] == "r2plus1d"
    assert params["model.options.width"] == "0.125" and params["train.precision"] == "float32"
    assert int(params["dataset.clips"]) == len(r.evaluation.predictions)
    # metrics per epoch and fold, per fold on its test part, and pooled
    fold = r.folds["fold"].iloc[0]
    steps = [m.step for m in client.get_metric_history(r.run_id, f"{fold}/train_loss")]
    assert steps == list(r.history.loc[r.history["fold"] == fold, "epoch"])
    assert run.data.metrics["cv/balanced_accuracy"] == pytest.approx(r.overall["balanced_accuracy"])
    assert run.data.metrics[f"{fold}/test_accuracy"] == pytest.approx(
        r.folds.set_index("fold").loc[fold, "accuracy"])
    # code version and environment
    tags = run.data.tags
    from deepepil import __version__

    assert tags["deepepil.version"] == __version__ and tags["deepepil.env.torch"] == torch.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert tags["mlflow.source.git.commit"] == head.stdout.strip()
    # the label snapshot as the dataset input
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == cohort.snapshot.content_hash[:32]
    assert dataset_input.dataset.name == "ml-tests"
    input_tags = {t.key: t.value for t in dataset_input.tags}
    assert input_tags["snapshot_hash"] == cohort.snapshot.content_hash == tags["deepepil.snapshot_hash"]
    assert input_tags["mlflow.data.context"] == "training"
    # artifacts
    def listing(path=None):
        out = []
        for f in client.list_artifacts(r.run_id, path):
            out.extend(listing(f.path) if f.is_dir else [f.path])
        return out

    files = set(listing())
    assert {"config.yaml", "environment/requirements.txt", "environment/environment.json", "data/clip_index.csv",
            "evaluation/confusion_matrix.png", "evaluation/roc.png", "evaluation/fold_metrics.csv",
            "evaluation/patient_metrics.csv", "evaluation/predictions.csv", f"checkpoints/{fold}/last.pt",
            "checkpoints/final/last.pt"} <= files
    local = client.download_artifacts(r.run_id, "environment/requirements.txt")
    assert "torch==" in Path(local).read_text() and "mlflow==" in Path(local).read_text()
    # the registered model, with its alias
    version = client.get_model_version_by_alias("syndrome-tiny", "candidate")
    assert str(version.version) == "1" and version.run_id == r.run_id
    assert version.tags["snapshot_hash"] == cohort.snapshot.content_hash


def test_early_stopping_stops_when_the_metric_stops_improving(work):
    folder, url = work
    # nothing improves by a million: every fold stops after its first epoch plus `patience`
    config = tiny(url, folder / "es", run_name="es", **{
        "split.folds": [0], "train.epochs": 6,
        "train.early_stopping": {"metric": "loss", "patience": 2, "min_delta": 1e6},
        "tracking.enabled": False, "tracking.register": None})
    r = train(config, progress=False)
    epochs = r.epochs.set_index("fold")
    fold = r.folds["fold"].iloc[0]
    assert epochs.loc[fold, "epochs_run"] == 3 and epochs.loc[fold, "best_epoch"] == 0
    assert epochs.loc["final", "epochs_run"] == 1  # the final model trains for the epochs the folds chose
    assert r.run_id is None and not (folder / "es" / "mlflow.db").exists()


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(work):
    from mlflow import MlflowClient

    folder, url = work
    changes = {"split.folds": [1], "split.validation": "test", "train.epochs": 3, "train.final_model": False,
               "tracking.register": None, "data.augment": {"flip_p": 0.5, "temporal_jitter_frames": 2}}
    whole = train(tiny(url, folder / "whole", run_name="r", **changes, **{"tracking.enabled": False}),
                  progress=False)
    config = tiny(url, folder / "cut", run_name="r", **changes)

    def stop_after_first_epoch(info):
        if info["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, on_epoch_end=stop_after_first_epoch)
    run_dir = folder / "cut" / "runs" / "r"
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "interrupted"
    client = MlflowClient(tracking_uri=config["tracking"]["uri"])
    assert client.get_run(state["run_id"]).info.status == "KILLED"
    fold = whole.folds["fold"].iloc[0]
    assert torch.load(run_dir / "checkpoints" / fold / "last.pt", weights_only=False)["state"]["epoch"] == 0
    with pytest.raises(ResumeError, match="holds a run already"):
        train(config, progress=False)
    with pytest.raises(ResumeError, match=r"another configuration \(changed: train\.lr\)"):
        train(load_config(config).replace(**{"train.lr": 0.5}), resume=True, progress=False)

    resumed = train(config, resume=True, progress=False)
    assert resumed.run_id == state["run_id"] and client.get_run(resumed.run_id).info.status == "FINISHED"
    cols = [prob_column(c) for c in whole.classes]
    np.testing.assert_allclose(resumed.evaluation.predictions[cols], whole.evaluation.predictions[cols], atol=1e-5)
    np.testing.assert_allclose(resumed.history["train_loss"], whole.history["train_loss"], rtol=1e-5)
    steps = [m.step for m in client.get_metric_history(resumed.run_id, f"{fold}/train_loss")]
    assert steps == list(whole.history["epoch"]) and len(steps) >= 2


def test_the_train_command(work, capsys):
    folder, url = work
    path = folder / "cli.yaml"
    import yaml

    path.write_text(yaml.safe_dump(tiny(url, folder / "cli", **{"tracking.enabled": False,
                                                              "tracking.register": None})))
    assert deepepil_main(["train", str(path), "--set", "split.folds=[0]", "--set", "train.epochs=1",
                   "--set", "train.final_model=false", "--set", "run_name=cli", "-q"]) == 0
    out = capsys.readouterr().out
    assert f"run folder: {folder / 'cli' / 'runs' / 'cli'}" in out
    assert "balanced_accuracy" in out and "registered model" not in out


# --- bad input: a clear error before anything is trained or tracked ------------------------------


def _nothing_started(folder: Path) -> bool:
    return not (folder / "runs").exists() and not (folder / "mlflow.db").exists()


def test_unknown_snapshot_single_class_and_too_few_patients(cohort, work):
    folder, url = work
    from deepepil.labels import connect

    fle = [rid for name, rid in cohort.recording_ids.items() if cohort.syndromes[name] == "FLE"]
    with connect(url, user="root") as store:
        store.create_snapshot("fle-only", recording_ids=fle)
    bad = folder / "bad"
    with pytest.raises(NotFoundError, match=r"no label snapshot named 'nope'.*snapshots: .*ml-tests"):
        train(tiny(url, bad, **{"data.snapshot": "nope"}), progress=False)
    with pytest.raises(SingleClassError, match="every clip of target 'syndrome' has class 'FLE'"):
        train(tiny(url, bad, **{"data.snapshot": "fle-only"}), progress=False)
    # two folds of two patients: no patient can be held out for validation without losing a class
    with pytest.raises(ValidationError, match="leave none for validation"):
        train(tiny(url, bad, **{"split.method": "kfold", "split.n_splits": 2}), progress=False)
    with pytest.raises(ValidationError, match=r"split\.folds: no fold 'X'"):
        train(tiny(url, bad, **{"split.folds": ["X"]}), progress=False)
    with pytest.raises(ValidationError, match="needs clips of at least 8 frames"):
        train(tiny(url, bad, **{"model.name": "i3d", "data.clip_frames": 4}), progress=False)
    assert _nothing_started(bad)


def test_corrupt_or_mismatched_weights(work):
    folder, url = work
    bad = folder / "weights"
    bad.mkdir()
    (bad / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CorruptWeightsError, match="garbage.pt"):
        train(tiny(url, bad, **{"model.pretrained_path": str(bad / "garbage.pt")}), progress=False)
    from deepepil.ml import build_model

    torch.save(build_model("cnn2d", 2, 2, width=0.125).state_dict(), bad / "other.pt")
    with pytest.raises(WeightsMismatchError, match="other.pt"):
        train(tiny(url, bad, **{"model.pretrained_path": str(bad / "other.pt")}), progress=False)
    assert _nothing_started(bad)


def test_missing_stream(make_labelled, tmp_path):
    from deepepil.labels import connect

    url = f"sqlite:///{tmp_path / 'labels.sqlite'}"
    make_labelled(url, tmp_path / "store", patients=2, seconds=1.0, streams=("ir",))  # no depth stream
    with connect(url, user="root") as store:
        store.create_snapshot("ir-only")
    config = tiny(url, tmp_path, **{"data.snapshot": "ir-only"})
    with pytest.raises(MissingStreamError, match=r"has no depth stream; it has ir"):
        train(config, progress=False)
    assert _nothing_started(tmp_path)
    with pytest.raises(ConfigError):
        train({**config, "trian": {}}, progress=False)


def test_precision_follows_the_device():
    from deepepil.ml.training import precision

    assert precision(torch.device("cpu"), "auto") is None and precision(torch.device("cpu"), "bf16") is None
    assert precision(torch.device("cuda"), "off") is None
    assert precision(torch.device("cuda"), "fp16") == torch.float16


def test_a_gpu_asked_for_where_there_is_none(work):
    folder, url = work
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValidationError, match="no CUDA device is available"):
        train(tiny(url, folder / "nogpu", **{"train.device": "cuda"}), progress=False)
    assert _nothing_started(folder / "nogpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mixed_precision_training_on_the_gpu(work):
    folder, url = work
    r = train(tiny(url, folder / "gpu", run_name="gpu", **{
        "split.folds": [0], "train.epochs": 1, "train.amp": "auto", "tracking.register": None}), progress=False)
    from mlflow import MlflowClient

    params = MlflowClient(tracking_uri=r.tracking_uri).get_run(r.run_id).data.params
    assert params["train.device_used"].startswith("cuda")
    assert params["train.precision"] == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    assert np.isfinite(r.history["train_loss"]).all()


def test_the_tiny_configuration_learns_the_syndrome(work):
    # the demonstrated-learning recipe (bench/demo_learning.py, docs/ml.md) at test size: a 2D network
    # whose frame features are averaged over time, with frame-difference (motion) channels, left-one-
    # patient-out on the four tiny patients. Chance is 0.5; a broken loader, label or loss gives that.
    folder, url = work
    config = tiny(url, folder, run_name="learns", tracking={"enabled": False, "register": None})
    config["model"] = {"name": "cnn2d", "options": {"width": 0.25, "head": "mean"}}
    config["data"].update(fps=15.0, motion=True, augment={"flip_p": 0.5})
    config["split"] = {"method": "lopo", "validation": "none"}
    config["train"].update(epochs=8, batch_size=8, early_stopping=None, final_model=False)
    result = train(config, progress=False)
    assert result.overall["balanced_accuracy"] >= 0.8, result.folds
    assert result.patients["correct"].all(), result.patients
