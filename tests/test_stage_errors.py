"""stage.run: a user's error is one line and exit code 2; a bug keeps its traceback."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from imgclf.config.params import ParamsError
from imgclf.core.atomic import WriteError
from imgclf.core.errors import UserError
from imgclf.data.manifest import DataError
from stages import stage
from tests.conftest import REPO


def _params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    return str(path)


@pytest.mark.parametrize("error", [DataError("data/x: 3 rows, expected 4"), WriteError(28, "could not write y"),
                                   ParamsError("params.yaml: bad")])
def test_a_user_error_is_one_line_and_exit_code_2(tmp_path, capsys, error):
    assert isinstance(error, UserError)

    def failing(params):
        raise error

    with pytest.raises(SystemExit) as stop:
        stage.run("demo", failing, _params(tmp_path))
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"error: demo: {error}\n"


@pytest.mark.parametrize("bug", [KeyError("split"), ValueError("operands could not be broadcast"),
                                 RuntimeError("internal invariant")])
def test_a_bug_is_not_mistaken_for_a_user_error(tmp_path, bug):
    def failing(params):
        raise bug

    with pytest.raises(type(bug)):
        stage.run("demo", failing, _params(tmp_path))


def test_a_keras_stage_prints_no_tensorflow_start_up_lines(tmp_path):
    """TensorFlow's native INFO lines ("oneDNN custom operations", absl's pre-init warning) do not
    reach a stage's output; stderr stays empty for a stage that succeeds."""
    script = tmp_path / "s.py"
    script.write_text(textwrap.dedent(f"""
        from stages import stage

        def main(params):
            import keras, numpy as np
            m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
            m.compile("adam", "mse")
            m.fit(np.zeros((8, 3)), np.zeros((8, 2)), verbose=0)

        stage.run("demo", main, {_params(tmp_path)!r}, keras=True)
    """))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    assert res.stdout.startswith("demo: done in")


def _run_stage(stage_name, cwd, *python_args):
    """`python -m stages.<name>` in cwd as DVC runs it, with this checkout's library."""
    return subprocess.run([sys.executable, *python_args, "-m", f"stages.{stage_name}"], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"})


@pytest.mark.parametrize("stage_name, setup, expected", [
    ("train", lambda d: (d / "params.yaml").write_text(
        re.sub(r"(?m)^(  head:\n(?:    .*\n)*?    dropout: ).*$", r"\g<1>1.4", (REPO / "params.yaml").read_text())),
     "train.head.dropout = 1.4: Input should be less than 1"),
    ("augment", lambda d: (d / "params.yaml").write_text((REPO / "params.yaml").read_text()),
     "data/split/images.npy: not found; run the stages before this one first"),
    # The stages that use the augmenters build them before any work (the others skip imgaug).
    *[(name, lambda d: (d / "params.yaml").write_text((REPO / "params.yaml").read_text().replace(
        "- name: Fliplr", "- name: Flipper")), "augment.augmenters.0 = {'name': 'Flipper', 'args': {'p': 0.5}}: "
       "Value error, unknown augmenter 'Flipper'") for name in ("split", "augment")],
    # The stages that run a backbone check its name before any work.
    *[(name, lambda d: (d / "params.yaml").write_text((REPO / "params.yaml").read_text().replace(
        "backbone: MobileNet", "backbone: MobileNetV9")), "bottleneck.backbone = 'MobileNetV9': Value error, unknown "
       "backbone 'MobileNetV9'") for name in ("bottleneck", "evaluate")],
])
def test_a_real_stage_entry_point_exits_2_with_one_line(tmp_path, stage_name, setup, expected):
    """`python -m stages.<name>` as DVC runs it: bad params, or an input the previous stage never
    wrote, is exit code 2 and one line naming the key or the path, before any work."""
    setup(tmp_path)
    res = _run_stage(stage_name, tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[0].startswith(f"error: {stage_name}: ") and expected in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("stage_name", ["download", "bottleneck", "train", "evaluate"])
def test_a_stage_that_never_augments_does_not_import_imgaug(tmp_path, stage_name):
    """imgaug (with scipy.stats) costs about 2 s to import; a stage that never uses the augmenters
    validates every other parameter without it. (A CNN run's bottleneck stage skips TensorFlow too.)"""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["sources"] = [str(tmp_path / "nowhere")]    # download: no source has the files
    params["train"]["model"] = "cnn"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    res = _run_stage(stage_name, tmp_path, "-X", "importtime")
    assert res.returncode == 2, res.stderr[-2000:]             # it got past params to a missing input
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "imgclf.config.params" in imported and "imgaug" not in imported
    if stage_name == "bottleneck":
        assert "tensorflow" not in imported


def test_without_checks_the_augmenters_shape_and_every_other_key_are_still_checked(tmp_path):
    """The schema alone (what download and train ask for) checks every key's type and range; the
    library checks (imgaug, the backbone registry) come from the caller that owns them."""
    import yaml

    from imgclf.config.params import load_params, parse_params
    from imgclf.experiments.preflight import EVERY_CHECK, check

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["augment"]["augmenters"][0] = {"args": {"p": 0.5}}
    raw["train"]["head"]["dropout"] = 1.4
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert "augment.augmenters.0.name: Field required; the key is missing" in str(err.value)
    assert "train.head.dropout = 1.4" in str(err.value)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["augment"]["augmenters"][0]["name"] = "Flipper"
    raw["bottleneck"]["backbone"] = "AlexNet"
    params = parse_params(raw)
    assert params.augment.augmenters[0].name == "Flipper" and params.bottleneck.backbone == "AlexNet"
    with pytest.raises(ParamsError, match="(?s)unknown augmenter 'Flipper'.*unknown backbone 'AlexNet'"):
        check(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert load_params(path).augment.augmenters[0].name == "Flipper"
    with pytest.raises(ParamsError, match="2 invalid parameter"):
        load_params(path, EVERY_CHECK)
