"""Presets: named recipes in presets/*.yaml run as DVC experiments (imgclf preset)."""

import pytest
import yaml

from imgclf.config.presets import PresetError, load_preset
from imgclf.config.schema import flatten
from imgclf.experiments.run_preset import build_command, set_args
from tests.conftest import REPO


def test_every_committed_preset_is_valid_on_top_of_params_yaml():
    names = sorted(p.stem for p in (REPO / "presets").glob("*.yaml"))
    assert {"head", "cnn", "cnn-f32"} <= set(names)
    for name in names:
        cmd = build_command(name, [], None, REPO / "params.yaml", REPO / "presets")
        assert cmd[1:5] == ["exp", "run", "-n", name]
        assert load_preset(name, REPO / "presets")["description"]


def test_a_preset_becomes_set_params_that_dvc_parses_back(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "wide.yaml").write_text(yaml.safe_dump(
        {"description": "d", "params": {"train": {"model": "cnn", "cnn": {"filters": [48, 96], "epochs": 3}}}}))
    cmd = build_command("wide", ["train.cnn.epochs=5", "augment.multiplier=2"], "w5", REPO / "params.yaml", presets)
    pairs = dict(cmd[i + 1].split("=", 1) for i in range(5, len(cmd), 2))
    assert {k: yaml.safe_load(v) for k, v in pairs.items()} == {
        "train.model": "cnn", "train.cnn.filters": [48, 96], "train.cnn.epochs": 5, "augment.multiplier": 2}
    assert cmd[3:5] == ["-n", "w5"]
    temp = build_command("wide", [], "w", REPO / "params.yaml", presets, mode="temp")
    assert temp[2:6] == ["run", "--temp", "-n", "w"]      # a 30-minute run leaves the workspace free


def test_temp_and_queue_are_passed_to_dvc_and_exclude_each_other(capsys, monkeypatch):
    from imgclf.experiments.run_preset import main
    monkeypatch.chdir(REPO)
    assert main(["cnn", "--queue", "--dry"]) == 0
    assert capsys.readouterr().out.startswith("dvc exp run --queue -n cnn -S ")
    with pytest.raises(SystemExit) as stop:
        main(["cnn", "--queue", "--temp", "--dry"])
    assert stop.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_a_wrong_key_or_value_in_a_preset_names_the_preset_and_key(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "typo.yaml").write_text("params:\n  train:\n    cnn:\n      epochz: 3\n")
    with pytest.raises(PresetError, match=r"(?s)typo\.yaml.*train\.cnn\.epochz"):
        build_command("typo", [], None, REPO / "params.yaml", presets)
    (presets / "bad.yaml").write_text("params:\n  augment:\n    multiplier: 0\n")
    with pytest.raises(PresetError, match=r"augment\.multiplier"):
        build_command("bad", [], None, REPO / "params.yaml", presets)
    with pytest.raises(PresetError, match="no such preset"):
        build_command("missing", [], None, REPO / "params.yaml", presets)
    (presets / "broken.yaml").write_text("params: {train: [\n")
    with pytest.raises(PresetError, match=r"broken\.yaml: not valid YAML"):
        build_command("broken", [], None, REPO / "params.yaml", presets)


def test_flatten_keeps_lists_and_empty_sections_as_values():
    assert flatten({"a": {"b": [1, 2], "c": {"d": None}}, "e": {}}) == {"a.b": [1, 2], "a.c.d": None, "e": {}}
    assert set_args({"x.y": None, "x.z": [1, 2], "x.w": True}) == ["-S", "x.y=null", "-S", "x.z=[1, 2]",
                                                                    "-S", "x.w=true"]
