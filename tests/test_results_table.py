"""The results table (docs/results.md) is built from `dvc exp show --json`, never typed."""

from imgclf.config.schema import flatten
from imgclf.review import results_table


def _entry(rev, params, evaluate, train, name=None):
    return {"rev": rev, "name": name, "data": {
        "params": {"params.yaml": {"data": params}},
        "metrics": {"metrics/evaluate.json": {"data": evaluate}, "metrics/train.json": {"data": train}}}}


def test_table_rows_carry_the_exact_arguments_and_metrics():
    base = {"augment": {"multiplier": 2}, "train": {"model": "head", "cnn": {"random_erasing": 0.5, "flip_tta": True}}}
    cnn = {"augment": {"multiplier": 4}, "train": {"model": "cnn", "cnn": {
        "random_erasing": 0.5, "flip_tta": True, "online_flip": True, "online_shift_px": 3, "tta_shift_px": 1}}}
    ev = lambda acc: {"test": {"accuracy": acc, "macro_f1": acc - 0.01, "f1": {"shirt": 0.8}}}  # noqa: E731
    head = _entry("a" * 40, base, ev(0.925), {"parameters": 1189899, "train_seconds": 160.2})
    head["experiments"] = [{"revs": [_entry("b" * 40, cnn, ev(0.9512), {"parameters": 586282, "train_seconds": 1400.0},
                                            name="cnn-x4")]}]
    lines = results_table.table([{"rev": "workspace"}, head]).splitlines()
    assert len(lines) == 4
    assert "| baseline (HEAD) | aaaaaaa | head | 1189899 | (as committed) | offline x2 | 0.9250 |" in lines[2]
    assert ("| cnn-x4 | aaaaaaa | cnn | 586282 | -S augment.multiplier=4 -S train.cnn.online_flip=True "
            "-S train.cnn.online_shift_px=3 -S train.cnn.tta_shift_px=1 -S train.model=cnn |") in lines[3]
    assert ("offline x4, online flip + shift ±3 px, erasing p=0.5, flip + ±1 px shifts TTA | 0.9512 | 0.9412 | "
            "0.8000 | 1400.0 |") in lines[3]


def test_the_head_recipe_names_its_mirror_variant_and_flip_tta():
    mirrored = {"augment": {"multiplier": 2, "mirror": True}, "train": {"model": "head", "head": {"flip_tta": True}}}
    assert results_table.augmentation(flatten(mirrored)) == "offline x2 (mirror first), flip TTA"
    plain = {"augment": {"multiplier": 1, "mirror": True}, "train": {"model": "head", "head": {"flip_tta": False}}}
    assert results_table.augmentation(flatten(plain)) == "offline x1"


def test_the_cnn_recipe_says_whether_its_online_flips_alternate():
    cnn = {"augment": {"multiplier": 2}, "train": {"model": "cnn", "cnn": {"online_flip": True, "random_erasing": 0}}}
    assert results_table.augmentation(flatten(cnn)) == "offline x2, online flip"
    cnn["train"]["cnn"]["alternating_flip"] = True
    assert results_table.augmentation(flatten(cnn)) == "offline x2, online alternating flip"


def test_rows_of_experiments_this_clone_lacks_are_kept_and_the_old_baseline_is_replaced():
    header = "| experiment | commit | model |\n|---|---|---|"
    old = "\n".join([header, "| baseline (HEAD) | 1111111 | head |", "| cnn-old | 2222222 | cnn |",
                     "| cnn-new | 3333333 | cnn |"])
    new = "\n".join([header, "| baseline (HEAD) | 4444444 | head |", "| cnn-new | 3333333 | cnn |"])
    assert results_table.merge(new, old).splitlines() == [
        *header.splitlines(), "| baseline (HEAD) | 4444444 | head |", "| cnn-new | 3333333 | cnn |",
        "| cnn-old | 2222222 | cnn |"]


def test_rows_of_superseded_commits_go_to_the_archive():
    header = "| experiment | commit | x |\n|---|---|---|\n"
    text = header + "| baseline (HEAD) | abc1234 | 1 |\n| m4 | abc1234 | 2 |\n| old | 0000000 | 3 |"
    current, older = results_table.partition(text)
    assert current.splitlines()[2:] == ["| baseline (HEAD) | abc1234 | 1 |", "| m4 | abc1234 | 2 |"]
    assert older.splitlines()[2:] == ["| old | 0000000 | 3 |"]
    assert older.splitlines()[:2] == header.splitlines()


def test_queued_running_and_failed_experiments_get_no_row():
    """Until it finishes, `dvc exp show` gives an experiment its baseline's metrics: a row then would
    publish the baseline's numbers under the experiment's name."""
    params = {"train": {"model": "head"}}
    ev = {"test": {"accuracy": 0.9, "macro_f1": 0.9, "f1": {"shirt": 0.8}}}
    head = _entry("a" * 40, params, ev, {})
    head["experiments"] = [
        {"executor": {"state": state}, "revs": [_entry(c * 40, {"train": {"model": "cnn"}}, ev, {}, name=state)]}
        for state, c in (("queued", "b"), ("running", "c"), ("failed", "d"), ("success", "e"))]
    head["experiments"].append({"revs": [_entry("f" * 40, {"train": {"model": "cnn"}}, ev, {}, name="no-executor")]})
    rows = [line.split("|")[1].strip() for line in results_table.table([head]).splitlines()[2:]]
    assert rows == ["baseline (HEAD)", "success", "no-executor"]
