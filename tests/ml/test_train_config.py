"""The training configuration: typed sections from YAML; unknown keys and bad values are refused up front."""

from __future__ import annotations

import pytest

from deepepil.errors import ConfigError, ValidationError
from deepepil.ml import Config, load_config
from deepepil.cli import main as deepepil_main

MINIMAL = {"data": {"snapshot": "train-v1"}}


def test_defaults_and_yaml_round_trip(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(
        "experiment: fle-vs-tle\n"
        "data:\n  snapshot: train-v1\n  streams: ir\n  size: [64, 48]\n  augment: false\n"
        "model:\n  name: i3d\n  options: {width: 0.5}\n"
        "train:\n  lr: 1e-3\n  epochs: 3\n"
    )
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.data.streams == ("ir",)          # one stream may be written without a list
    assert config.data.size == (64, 48) and config.data.augment is None
    assert config.train.lr == 0.001                # YAML 1.1 reads 1e-3 as a string: still a number here
    assert config.model.options == {"width": 0.5}
    assert config.split.method == "lopo" and config.train.early_stopping.metric == "balanced_accuracy"
    again = load_config(config.to_dict())
    assert again == config and again.digest == config.digest
    flat = config.flat()
    assert flat["train.epochs"] == 3 and flat["model.options.width"] == 0.5 and flat["data.snapshot"] == "train-v1"


def test_digest_ignores_tracking_and_output_but_not_training():
    base = load_config(MINIMAL)
    assert base.replace(**{"tracking.register": "m", "output_dir": "elsewhere"}).digest == base.digest
    assert base.replace(**{"train.epochs": 3}).digest != base.digest


@pytest.mark.parametrize("content, where, unknown, suggestion", [
    ({**MINIMAL, "epochs": 3}, "the top level", "epochs", None),
    ({**MINIMAL, "train": {"epochz": 3}}, "section 'train'", "epochz", "epochs"),
    ({"data": {"snapshot": "s", "strems": ["ir"]}}, "section 'data'", "strems", "streams"),
    ({**MINIMAL, "train": {"early_stopping": {"metrc": "loss"}}}, "section 'train.early_stopping'", "metrc",
     "metric"),
])
def test_unknown_keys_are_named_with_the_allowed_ones(content, where, unknown, suggestion):
    with pytest.raises(ConfigError) as err:
        load_config(content)
    message = str(err.value)
    assert repr(unknown) in message and where in message and "allowed keys there" in message
    assert err.value.unknown == [unknown] and err.value.allowed
    assert all(key in message for key in err.value.allowed)
    if suggestion:
        assert f"did you mean {suggestion!r}" in message


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {snapshot: s}\nmodell: {name: i3d}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'modell'.*did you mean 'model'"):
        load_config(path)


@pytest.mark.parametrize("change, match", [
    ({"train": {"epochs": "ten"}}, r"train\.epochs must be an integer, got 'ten'"),
    ({"train": {"batch_size": 0}}, r"train\.batch_size must be > 0"),
    ({"split": {"method": "loo"}}, r"split\.method must be one of lopo, kfold, none; got 'loo'"),
    ({"train": {"amp": "fp8"}}, r"train\.amp must be one of auto, bf16, fp16, off"),
    ({"data": {"snapshot": "s", "size": [32]}},
     r"data\.size must be a list of 2 values \(each an integer\), got \[32\]"),
    ({"data": {"snapshot": "s", "augment": {"flip_p": 2.0}}}, r"data\.augment: flip_p must be from 0 to 1"),
    ({"split": {"validation": "none"}}, r"early_stopping needs a validation part"),
    ({"tracking": {"register": "m"}, "train": {"final_model": False}}, r"registers the final model"),
    ({"train": {"device": "tpu"}}, r"train\.device must be auto, cpu, cuda or cuda:N"),
])
def test_bad_values_are_refused_with_what_is_allowed(change, match):
    content = {**MINIMAL, **change}
    with pytest.raises(ConfigError, match=match):
        load_config(content)


def test_missing_snapshot_and_non_mapping():
    with pytest.raises(ConfigError, match=r"needs snapshot \(the label snapshot to train on"):
        load_config({"data": {}})
    with pytest.raises(ConfigError, match="section 'data' of the training configuration needs snapshot"):
        load_config({"data": {"target": "syndrome"}})
    with pytest.raises(ConfigError, match="needs data"):
        load_config({})
    with pytest.raises(ConfigError, match="a YAML file or a mapping"):
        load_config(42)
    assert issubclass(ConfigError, ValidationError) and issubclass(ConfigError, ValueError)


def test_the_train_command_refuses_a_bad_configuration(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {snapshot: s}\ntrain: {epochz: 2}\n")
    assert deepepil_main(["train", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deepepil train: error:") and "'epochz'" in err and "did you mean 'epochs'" in err
    assert not (tmp_path / "runs").exists()
    assert deepepil_main(["train", str(tmp_path / "missing.yaml")]) == 1
    assert "no training configuration at" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("data: {snapshot: s}\n")
    assert deepepil_main(["train", str(good), "--set", "nonsense"]) == 1
    assert "--set takes SECTION.KEY=VALUE" in capsys.readouterr().err
    assert deepepil_main(["train", str(good), "--set", "train.epochs=zero"]) == 1
    assert "train.epochs must be an integer, got 'zero'" in capsys.readouterr().err
