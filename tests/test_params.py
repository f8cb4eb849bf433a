"""Bad parameters fail before any work, with one message naming the key, the value and the rule."""

import copy
import subprocess
import sys

import pytest
import yaml

from imgclf.config.params import ParamsError, load_params
from imgclf.experiments.preflight import check
from tests.conftest import REPO

BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def _with(path: str, value):
    raw = copy.deepcopy(BASE)
    node = raw
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    return raw


def test_committed_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.augment.multiplier >= 1 and params.bottleneck.backbone == "MobileNet"


BAD = [
    ("augment.multiplier", 0, "greater than or equal to 1"),
    ("augment.multiplier", -1, "greater than or equal to 1"),
    ("augment.multiplier", 2.5, "valid integer"),
    ("augment.multiplier", "four", "valid integer"),
    ("augment.seed", -3, "greater than or equal to 0"),
    ("augment.augmenters", [{"name": "Flipper", "args": {}}], "unknown augmenter 'Flipper'"),
    ("augment.augmenters", [{"name": "Fliplr", "args": {"q": 1}}], "cannot be built"),
    ("split.val_fraction", 0, "greater than 0"),
    ("split.val_fraction", 1.5, "less than 1"),
    ("split.seed", "x", "valid integer"),
    ("dataset.kind", "cifar", "fashion_mnist"),
    ("dataset.train_limit", 0, "greater than or equal to 1"),
    ("download.sources", [], "at least 1 item"),
    ("download.files", {"a.gz": "abc"}, "64 lowercase hex"),
    ("download.files", {"../x.gz": "0" * 64}, "plain file name"),
    ("download.timeout_s", 0, "greater than 0"),
    ("download.retries", 11, "less than or equal to 10"),
    ("bottleneck.backbone", "AlexNet", "unknown backbone 'AlexNet'"),
    ("bottleneck.image_size", 16, "16 px is below the 32 px that MobileNet accepts"),
    ("bottleneck.weights", "random", "'imagenet'"),
    ("bottleneck.resize", "bilinear", "'linear' or 'area'"),
    ("bottleneck.batch_size", 0, "greater than or equal to 1"),
    ("train.model", "svm", "'head' or 'cnn'"),
    ("train.seed", -1, "greater than or equal to 0"),
    ("train.ensemble", 0, "greater than or equal to 1"),
    ("train.ensemble", 11, "less than or equal to 10"),
    ("train.head.hidden_units", [0], "at least 1 unit"),
    ("train.head.dropout", 1.0, "less than 1"),
    ("train.head.learning_rate", 0, "greater than 0"),
    ("train.head.batch_size", 0, "greater than or equal to 1"),
    ("train.head.epochs", 0, "greater than or equal to 1"),
    ("train.head.patience", 0, "greater than or equal to 1"),
    ("train.cnn.filters", [], "at least 1 item"),
    ("train.cnn.filters", [32, 0], "at least 1 filter"),
    ("train.cnn.dense_units", 0, "greater than or equal to 1"),
    ("train.cnn.dropout", -0.1, "greater than or equal to 0"),
    ("train.cnn.learning_rate", 2, "less than or equal to 1"),
    ("train.cnn.weight_decay", -1, "greater than or equal to 0"),
    ("train.cnn.label_smoothing", 1, "less than 1"),
    ("train.cnn.batch_size", 0, "greater than or equal to 1"),
    ("train.cnn.epochs", 0, "greater than or equal to 1"),
    ("train.bogus", 1, "unknown key"),
    ("dataset.test_limit", 0, "greater than or equal to 1"),
    ("split.near_duplicates", "maybe", "'group', 'report' or 'off'"),
    ("split.near_duplicate_neighbours", 65, "less than or equal to 64"),
    ("split.near_duplicate_max_shift", -1, "greater than or equal to 0"),
    ("split.audit_recall_pairs", 1.5, "valid integer"),
    ("split.near_duplicate_max_rms", -1, "greater than or equal to 0"),
    ("bottleneck.cache_dir", "", "at least 1 character"),
    ("bottleneck.backbone_args", "alpha", "valid dictionary"),
    ("augment.augmenters", [{"args": {}}], "Field required"),
    ("dataset.source_sha256", "ABC", "should match pattern"),
    ("dataset.source_sha256", "0" * 63, "should match pattern"),
    ("dataset.image_size", 7, "greater than or equal to 8"),
    ("dataset.image_size", 1025, "less than or equal to 1024"),
    ("dataset.colour", "bgr", "'grey' or 'rgb'"),
    ("dataset.on_bad_image", "ignore", "'fail' or 'skip'"),
    ("dataset.max_archive_mb", 0, "greater than or equal to 1"),
    ("bottleneck.grid", 0, "greater than or equal to 1"),
    ("bottleneck.grid", 65, "less than or equal to 64"),
    ("bottleneck.layer", "", "at least 1 character"),
    ("train.cnn.block", "pool-conv-conv", "'conv-conv-pool' or 'conv-pool-conv'"),
    ("train.cnn.optimizer", "adam", "'adamw' or 'sgd'"),
    ("train.cnn.precision", "float16", "'float32' or 'mixed_bfloat16'"),
    ("train.cnn.online_shift_px", -1, "greater than or equal to 0"),
    ("train.cnn.online_shift_px", 9, "less than or equal to 8"),
    ("train.cnn.tta_shift_px", 9, "less than or equal to 8"),
    ("train.cnn.filters", [8, 16, 32, 64, 128], "at most 4 items"),
    ("train.cnn.random_erasing", 1.5, "less than or equal to 1"),
    ("train.cnn.online_flip", "yes", "valid boolean"),
    ("train.head.input_dropout", 1.0, "less than 1"),
    ("train.head.input_dropout", -0.1, "greater than or equal to 0"),
]


@pytest.mark.parametrize("change, expected", [
    ({"dataset.kind": "image_folder"}, "dataset.source is required when dataset.kind is image_folder"),
    ({"split.val_fraction": 0.5, "split.test_fraction": 0.5}, "val_fraction + test_fraction = 1"),
    ({"augment.multiplier": 1}, "train.head.flip_tta = true needs mirror images in training, but augment.multiplier = 1"),
])
def test_cross_field_rules_name_both_fields(change, expected):
    raw = _with(*next(iter(change.items())))
    for key, value in list(change.items())[1:]:
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    with pytest.raises(ParamsError) as err:
        check(raw)
    assert expected in str(err.value)


@pytest.mark.parametrize("key,value,expected", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_value_names_key_value_and_rule(key, value, expected):
    with pytest.raises(ParamsError) as err:
        check(_with(key, value))
    msg = str(err.value)
    assert key in msg and expected in msg
    assert "1 invalid parameter" in msg


def test_unknown_section_is_rejected():
    raw = dict(copy.deepcopy(BASE), augmnet={"multiplier": 2})
    with pytest.raises(ParamsError, match="augmnet: unknown key") as err:
        check(raw)
    assert str(err.value).startswith("params.yaml: ")          # the file is named even when not given


def test_check_exit_codes_and_messages(tmp_path, capsys):
    from imgclf.experiments.preflight import main

    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(_with("augment.multiplier", 0)))
    good = str(REPO / "params.yaml")
    assert main([good]) == 0
    out = capsys.readouterr()
    assert out.out == f"{good}: ok\n" and out.err == ""
    assert main([str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("error: ") and "augment.multiplier = 0" in out.err
    assert main([str(tmp_path / "none.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    # The module is the command users type: its exit code is main's.
    res = subprocess.run([sys.executable, "-m", "imgclf.experiments.preflight", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "augment.multiplier = 0" in res.stderr



def test_check_without_a_path_reads_the_projects_params_yaml_and_help_says_what_it_does(tmp_path, monkeypatch, capsys):
    import re
    import shutil

    from imgclf.experiments.preflight import main

    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert main([]) == 0                            # what `make check` and the README type
    assert capsys.readouterr().out == "params.yaml: ok\n"
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: imgclf check [-h] [path]\n\n"
                           "Check params.yaml as every stage would before its work, all at once.\n"), text
    assert re.search(r"^  path", text, re.M), text


def _defaults_that_differ(model_cls, data: dict, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    found = []
    for name, field in model_cls.model_fields.items():
        key, ann = f"{prefix}{name}", field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found += _defaults_that_differ(ann, data.get(name, {}), key + ".")
            continue
        if field.is_required():
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):
            default = [d.model_dump() if isinstance(d, BaseModel) else d for d in default]
        if name not in data:
            found.append(f"{key}: missing from params.yaml")
        elif default != data[name]:
            found.append(f"{key}: schema default {default!r}, params.yaml {data[name]!r}")
    return found


def test_schema_defaults_are_params_yaml():
    """params.yaml is the one source of truth: the schema's defaults may not say otherwise."""
    import yaml

    from imgclf.config.params import Params
    from tests.conftest import REPO

    data = yaml.safe_load((REPO / "params.yaml").read_text())
    assert _defaults_that_differ(Params, data) == []


def test_the_whole_error_message_names_the_file_every_bad_key_and_its_value(tmp_path):
    from imgclf.config.params import ParamsError, load_params

    data = _with("augment.multiplier", 0)
    data["train"]["head"]["dropuot"] = 0.5
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError) as err:
        load_params(bad)
    assert str(err.value) == (f"{bad}: 2 invalid parameter(s):\n"
                              "  augment.multiplier = 0: Input should be greater than or equal to 1\n"
                              "  train.head.dropuot: unknown key (value 0.5); check the spelling against params.py")
    bad.write_text("- a list\n")
    with pytest.raises(ParamsError) as err:
        load_params(bad)
    assert str(err.value) == f"{bad}: expected a mapping of sections at the top level, got list"
    with pytest.raises(ParamsError) as err:
        load_params(tmp_path / "none.yaml")
    assert str(err.value) == f"{tmp_path / 'none.yaml'}: not found"


def test_a_rule_across_sections_is_one_readable_line():
    """The flip-TTA rule spans augment and train: its message names both keys, and is not buried
    in a dump of the whole file."""
    with pytest.raises(ParamsError) as err:
        check(_with("augment.multiplier", 1))
    assert str(err.value).splitlines()[1:] == [
        "  train.head.flip_tta = true needs mirror images in training, but augment.multiplier = 1 makes no "
        "variants; set augment.multiplier >= 2 (variant 1 is the mirror with augment.mirror) or train.head.flip_tta: false"]
    raw = _with("augment.multiplier", 1)
    raw["train"]["head"]["flip_tta"] = False
    assert check(raw).augment.multiplier == 1
    raw["train"]["model"] = "cnn"                # the rule is the head's, where it was measured
    raw["train"]["head"]["flip_tta"] = True
    assert check(raw).train.model == "cnn"
