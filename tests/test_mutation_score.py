"""bench/mutation_score.py turns mutmut's per-module results into the score table of docs/mutation.md."""

import importlib.util
import json
import subprocess
import sys

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("mutation_score", REPO / "bench" / "mutation_score.py")
mutation_score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation_score)


def _meta(path, codes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": codes}))


def test_scores_count_timeouts_as_killed_and_discount_only_explained_survivors(tmp_path):
    _meta(tmp_path / "mutants/src/imgclf/data/split.py.meta",
          {f"imgclf.data.split.x_by_source__mutmut_{i}": code for i, code in enumerate([1, 1, 36, 0, 0, 5, None, 1], 1)})
    _meta(tmp_path / "mutants/src/imgclf/core/atomic.py.meta", {"imgclf.core.atomic.x_write_text__mutmut_1": 1})
    # _7 was not reached: listed or not, it must not count as explained (a partial run scored 142 %)
    (tmp_path / "eq.yaml").write_text("- reason: a keyword nobody reads\n"
                                      "  mutants: [imgclf.data.split.x_by_source__mutmut_4, imgclf.data.split.x_by_source__mutmut_7]\n")
    out = tmp_path / "mutation.md"
    proc = subprocess.run([sys.executable, str(REPO / "bench/mutation_score.py"), "--mutants", str(tmp_path / "mutants"),
                           "--equivalent", str(tmp_path / "eq.yaml"), "--out", str(out), "--json", str(tmp_path / "m.json"),
                           "--before", str(tmp_path / "no-earlier-run.json")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {r["module"]: r for r in json.loads((tmp_path / "m.json").read_text())["modules"]}
    split = rows["split"]
    assert (split["mutants"], split["not_checked"], split["killed"], split["survived"], split["no_tests"], split["other"]) == (8, 1, 4, 2, 1, 0)
    assert split["equivalent"] == 1 and split["score"] == 4 / 7 and split["score_without_equivalent"] == 4 / 6
    assert rows["atomic"]["score"] == 1.0
    text = out.read_text()
    assert "| split | 8 | 1 | 4 | 2 | 1 | 0 | 1 | 57.1% | 66.7% | 30%-90% |" in text      # 4 of 6: a wide interval
    assert "| atomic | 1 | 0 | 1 | 0 | 0 | 0 | 0 | 100.0% | 100.0% | all checked |" in text
    assert "`imgclf.data.split.x_by_source__mutmut_4`: a keyword nobody reads" in text
    assert "`imgclf.data.split.x_by_source__mutmut_5` (survived)" in text       # not explained: listed as open
    assert "`imgclf.data.split.x_by_source__mutmut_6` (no tests)" in text
    assert "mutmut_7" not in text


def test_no_results_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench/mutation_score.py"), "--mutants", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1 and "no mutmut results under" in proc.stderr and "make mutation" in proc.stderr


def test_the_interval_of_a_sampled_score_narrows_with_the_sample():
    low, high = mutation_score.wilson(40, 50)
    assert (round(low, 3), round(high, 3)) == (0.670, 0.888)         # 80 % of 50 sampled
    low, high = mutation_score.wilson(400, 500)
    assert 0.76 < low < 0.8 < high < 0.84
    assert mutation_score.wilson(0, 0) == (0.0, 1.0) and mutation_score.wilson(5, 5)[1] == 1.0


def test_module_of_reads_mutmut_names():
    assert mutation_score.module_of("imgclf.data.near_duplicates.x_window_pairs__mutmut_12") == "near_duplicates"
    assert mutation_score.module_of("imgclf.features.feature_store.xǁFeatureStoreǁprune__mutmut_22") == "feature_store"


def test_sample_draws_unchecked_mutants_per_module_the_same_for_one_seed():
    results = {f"imgclf.data.split.x_f__mutmut_{i}": "not checked" for i in range(20)}
    results.update({f"imgclf.core.atomic.x_g__mutmut_{i}": "not checked" for i in range(3)})
    results["imgclf.data.split.x_f__mutmut_20"] = "killed"
    picked = mutation_score.sample(results, 5, seed=0)
    split = [m for m in picked if ".split." in m]
    assert len(split) == 5 and "imgclf.data.split.x_f__mutmut_20" not in picked     # checked ones are not redrawn
    assert sorted(m for m in picked if ".atomic." in m) == [f"imgclf.core.atomic.x_g__mutmut_{i}" for i in range(3)]
    assert mutation_score.sample(results, 5, seed=0) == picked != mutation_score.sample(results, 5, seed=1)


def test_an_earlier_runs_scores_stand_beside_todays_and_the_counts_beside_the_report(tmp_path):
    _meta(tmp_path / "mutants/src/imgclf/data/split.py.meta", {f"imgclf.data.split.x_f__mutmut_{i}": 1 for i in range(4)})
    _meta(tmp_path / "mutants/src/imgclf/core/atomic.py.meta", {"imgclf.core.atomic.x_g__mutmut_1": 0})
    earlier = {"ran_with": {"commit": "b83abf8c34ac+dirty"}, "modules": [
        {"module": "split", "mutants": 4, "not_checked": 0, "killed": 1},
        {"module": "atomic", "mutants": 1, "not_checked": 1, "killed": 0}]}
    (tmp_path / "before.json").write_text(json.dumps(earlier))
    out = tmp_path / "docs" / "mutation.md"
    proc = subprocess.run([sys.executable, str(REPO / "bench/mutation_score.py"), "--mutants", str(tmp_path / "mutants"),
                           "--equivalent", str(tmp_path / "none.yaml"), "--out", str(out),
                           "--before", str(tmp_path / "before.json")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "| equivalent (explained) | score before (b83abf8) | score |" in text
    assert "| split | 4 | 0 | 4 | 0 | 0 | 0 | 0 | 25.0% | 100.0% | 100.0% | all checked |" in text
    assert "| atomic | 1 | 0 | 0 | 1 | 0 | 0 | 0 | not run | 0.0% | 0.0% | all checked |" in text
    assert "| **all** | 5 | 0 | 4 | 1 | 0 | 0 | 0 | 25.0% | 80.0% |" in text             # 1 of 4 checked then
    assert json.loads(out.with_suffix(".json").read_text())["modules"][1]["killed"] == 4
