"""MLflow tracking and the registry on real stores (SQLite and PostgreSQL), and the server command for the hub."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from deepepil.processes import free_port
from deepepil.errors import ModelNotFoundError, ValidationError
from deepepil.ml import build_model, mlflow_server_command
from deepepil.ml.tracking import (
    ModelRef, Tracker, code_version, load_registered, metric_key, parse_model_ref, requirements_text, resolve_ref,
    set_alias,
)

ROOT = Path(__file__).resolve().parents[2]


def test_model_references():
    assert parse_model_ref("fle-tle@production") == ModelRef("fle-tle", alias="production")
    assert parse_model_ref("fle-tle:3") == ModelRef("fle-tle", version="3")
    assert parse_model_ref("models:/fle-tle/3") == ModelRef("fle-tle", version="3")
    assert parse_model_ref("fle-tle") == ModelRef("fle-tle")
    assert ModelRef("m", version="2").label == "m:2" and str(ModelRef("m", "2", "candidate")) == "m@candidate"
    for bad, match in (("", "NAME@ALIAS"), ("m@", "NAME@ALIAS"), ("m:latest", "a version is a number")):
        with pytest.raises(ValidationError, match=match):
            parse_model_ref(bad)


def test_metric_keys_keep_folds_apart():
    assert metric_key("SYN-AB12/x", "val_loss") == "SYN-AB12/x/val_loss"
    assert metric_key("fold 0", "train_loss") == "fold 0/train_loss"
    assert metric_key("a(b)", "c") == "a_b_/c"


def test_code_version_and_environment():
    info = code_version()
    from deepepil import __version__

    assert info["deepepil_version"] == __version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert info["git_commit"] == head.stdout.strip() and isinstance(info["git_dirty"], bool)
    lines = requirements_text().splitlines()
    names = [line.split("==")[0].lower() for line in lines]
    assert names == sorted(names) and len(set(names)) == len(names) and "torch" in names


def test_server_command_for_the_hub(tmp_path):
    cmd = mlflow_server_command("sqlite:////srv/mlflow/mlflow.db", tmp_path / "artifacts", 5010,
                                allowed_hosts=["hub.clinic.example"])
    assert cmd[:4] == [sys.executable, "-m", "mlflow", "server"]
    opts = dict(zip(cmd[4::1], cmd[5::1]))
    assert opts["--backend-store-uri"] == "sqlite:////srv/mlflow/mlflow.db"
    assert opts["--static-prefix"] == "/services/mlflow" and opts["--host"] == "127.0.0.1"
    assert opts["--port"] == "5010" and opts["--artifacts-destination"] == str((tmp_path / "artifacts").resolve())
    assert "hub.clinic.example" in opts["--allowed-hosts"] and "--serve-artifacts" in cmd
    for prefix in ("services/mlflow", "/services/mlflow/", "/"):
        with pytest.raises(ValidationError, match="static_prefix must start with '/'"):
            mlflow_server_command("sqlite:///x.db", tmp_path, 5000, prefix)
    with pytest.raises(ValidationError, match="port must be from 1 to 65535"):
        mlflow_server_command("sqlite:///x.db", tmp_path, 0)


def _log_and_register(uri: str, artifacts: Path, snapshot) -> tuple[Tracker, torch.nn.Module]:
    model = build_model("r2plus1d", 2, 1, width=0.125)
    tracker = Tracker(uri, "registry-tests", str(artifacts))
    tracker.start(run_name="t")
    tracker.log_params({"train.lr": 0.001, "data.streams": ["ir"]})
    tracker.log_metrics({"fold 0/train_loss": 0.5, "cv/roc_auc": float("nan")}, step=1)
    tracker.log_snapshot(snapshot)
    ref = tracker.log_model(model, {"classes": ["FLE", "TLE"], "snapshot_hash": snapshot.content_hash},
                            register="tiny", alias="candidate")
    tracker.end()
    assert ref == ModelRef("tiny", version="1", alias="candidate")
    return tracker, model


def _check_registry(uri: str, tracker: Tracker, model: torch.nn.Module, snapshot) -> None:
    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.params["data.streams"] == '["ir"]'
    assert run.data.metrics == {"fold 0/train_loss": 0.5}  # NaN is not logged
    assert run.inputs.dataset_inputs[0].dataset.digest == snapshot.content_hash[:32]
    loaded, meta, ref = load_registered("tiny@candidate", uri)
    assert ref.label == "tiny:1" and meta["classes"] == ["FLE", "TLE"] and not loaded.training
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert set_alias("tiny", "production", 1, uri) == ModelRef("tiny", version="1", alias="production")
    assert resolve_ref("tiny@production", uri).version == "1" and resolve_ref("tiny", uri).version == "1"
    with pytest.raises(ModelNotFoundError, match=r"no alias 'nope' of model 'tiny'.*tiny \(@candidate, @production\)"):
        resolve_ref("tiny@nope", uri)
    with pytest.raises(ModelNotFoundError, match="registered models: tiny"):
        resolve_ref("other:4", uri)


def test_registry_on_sqlite(cohort, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker, model = _log_and_register(uri, tmp_path / "artifacts", cohort.snapshot)
    _check_registry(uri, tracker, model, cohort.snapshot)
    # artifacts live under the artifact root, one folder per experiment
    assert list((tmp_path / "artifacts" / "registry-tests").rglob("MLmodel"))


def test_registry_on_postgresql(cohort, postgres_cluster, tmp_path):
    # MLflow migrates its own tables: a database of its own, never the label database's
    uri = postgres_cluster.create_database("mlflow_registry_test")
    tracker, model = _log_and_register(uri, tmp_path / "artifacts", cohort.snapshot)
    _check_registry(uri, tracker, model, cohort.snapshot)


@pytest.mark.slow
def test_the_server_answers_under_the_hub_prefix(cohort, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _log_and_register(uri, tmp_path / "artifacts", cohort.snapshot)
    port = free_port()
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.Popen(mlflow_server_command(uri, tmp_path / "artifacts", port), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/services/mlflow"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    assert r.read() == b"OK"
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/registered-models/alias?name=tiny&alias=candidate",
                                    timeout=10) as r:
            assert b'"version": "1"' in r.read().replace(b'"version":"1"', b'"version": "1"')
        with urllib.request.urlopen(f"{base}/", timeout=10) as r:  # the UI itself
            assert r.status == 200 and b"<html" in r.read().lower()
        # a kernel tracks through the server: no database credentials, artifacts proxied to the server's store
        remote = Tracker(base, "through-the-server")
        remote.start(run_name="remote")
        remote.log_metrics({"cv/f1_macro": 0.5})
        remote.log_text("hello", "notes/hello.txt")
        remote.end()
        assert remote.client.get_run(remote.run_id).data.metrics == {"cv/f1_macro": 0.5}
        assert [p.read_text() for p in (tmp_path / "artifacts").rglob("hello.txt")] == ["hello"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
