"""Shared fixtures: small synthetic datasets made by the tests, and a tiny random backbone."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from imgclf.data.idx import encode_idx  # noqa: E402
from imgclf.data.manifest import ImageSet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def real_fashion_mnist_dirs() -> list[Path]:
    """Local copies of the real Fashion-MNIST to check: $FASHION_MNIST_DIR (a directory holding the
    four .gz IDX files) and every local directory params.yaml's download.sources lists (the Debian
    package's /usr/share/datasets/fashion-mnist first)."""
    import yaml

    candidates = [os.environ.get("FASHION_MNIST_DIR", "")]
    candidates += yaml.safe_load((REPO / "params.yaml").read_text())["download"]["sources"]
    return [Path(c) for c in dict.fromkeys(candidates) if c and "://" not in c and Path(c).is_dir()]


def synthetic_images(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Learnable fake garments on noise: class c is a bright bar 4 + 2c pixels long at a random
    place, so the class survives the flips and shifts of the default augmenters; the noise makes
    every image distinct (no near-duplicates)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 12, size=(n, size, size), dtype=np.uint8)
    for img, c in zip(images, labels):
        length = 4 + 2 * int(c)
        row = int(rng.integers(4, size - 8))
        col = int(rng.integers(2, size - 2 - length))
        img[row:row + 4, col:col + length] = 220
        # three faint squares elsewhere: two images of one class must not pass for shifted copies of
        # each other (the split's near-duplicate audit would rightly group them)
        for _ in range(3):
            side = int(rng.integers(3, 6))
            y, x = rng.integers(0, size - side, 2)
            img[y:y + side, x:x + side] = np.maximum(img[y:y + side, x:x + side], 60)
    return images, labels.astype(np.uint8)


def write_idx_dataset(directory: Path, n_train: int = 400, n_test: int = 100, seed: int = 0) -> dict[str, str]:
    """The four Fashion-MNIST file names with synthetic content; returns name -> content SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    tr_x, tr_y = synthetic_images(n_train, seed)
    te_x, te_y = synthetic_images(n_test, seed + 1)
    checksums = {}
    for name, arr in {"train-images-idx3-ubyte.gz": tr_x, "train-labels-idx1-ubyte.gz": tr_y,
                      "t10k-images-idx3-ubyte.gz": te_x, "t10k-labels-idx1-ubyte.gz": te_y}.items():
        raw = encode_idx(arr)
        (directory / name).write_bytes(gzip.compress(raw, mtime=0))
        checksums[name] = hashlib.sha256(raw).hexdigest()
    return checksums


def image_set(images: np.ndarray, labels, official, ids=None, source_ids=None) -> ImageSet:
    ids = ids or [f"img-{i:04d}" for i in range(len(images))]
    return ImageSet(images, pd.DataFrame({
        "id": ids, "source_id": source_ids or ids, "label": np.asarray(labels, dtype=np.int64),
        "class_name": [f"c{int(c)}" for c in labels], "official_split": official}))


@pytest.fixture
def idx_dir(tmp_path) -> tuple[Path, dict[str, str]]:
    d = tmp_path / "source"
    return d, write_idx_dataset(d)


@pytest.fixture(scope="session")
def tiny_extractor():
    """Random-init MobileNet at 32 px: real Keras code path, no weights download."""
    from imgclf.features.backbones import FeatureExtractor, FeatureRecipe
    return FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear"), batch_size=16)


BIN = Path(__import__("sys").executable).parent
# Random-init VGG16 keeps a usable signal at 32 px (random MobileNet features vanish to ~1e-17).
TEST_BACKBONE = {"backbone": "VGG16", "backbone_args": {}, "weights": None, "image_size": 32,
                 "layer": None, "grid": 1}
# The same VGG16 cut after block 3 (1.7x its speed): for tests that compare bytes or count cache
# hits, not accuracy.
CUT_BACKBONE = {"layer": "block3_pool", "grid": 2}


# The head recipe the pipeline tests were measured with, fixed here so that tuning params.yaml's
# head (imgclf.experiments.tune) does not move the tests' pinned numbers.
TEST_HEAD = {"learning_rate": 0.001, "dropout": 0.4, "input_dropout": 0.3, "batch_size": 256}


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL on loopback for this test session (tests/postgres_server.py), stopped after.
    `bash .ci/run` installs the server; elsewhere, without it, its tests are skipped and say why."""
    from tests.postgres_server import serve, server_bin

    if server_bin() is None and not os.environ.get("CI"):
        pytest.skip("no PostgreSQL server: apt-get install postgresql (bash .ci/run installs it)")
    with serve() as url:
        yield url


def pipeline_env() -> dict:
    """The environment a user's shell gives `dvc repro`: the venv first on PATH."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", TF_CPP_MIN_LOG_LEVEL="3")


def run(args, cwd, check=True, timeout=900):
    res = __import__("subprocess").run([str(a) for a in args], cwd=cwd, env=pipeline_env(),
                                       capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({res.returncode}):\n"
                             f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def stages_run(out: str) -> set[str]:
    """The stages DVC computed (not skipped, not restored from the run-cache) in `dvc repro` output."""
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


def computes_nothing(out: str) -> bool:
    """Only download ran: it checks its source on every run (dvc.yaml: always_changed), and an
    unchanged source leaves data/raw as it was, so every later stage is skipped or restored."""
    return stages_run(out) <= {"download"}


def up_to_date(status_out: str) -> bool:
    """`dvc status` with nothing to do: download, always changed by design, is all it lists."""
    return status_out.split() in (["download:", "always", "changed"], ["Data", "and", "pipelines", "are", "up", "to", "date."])


def make_pipeline_repo(repo: Path, edit_params) -> Path:
    """A git + DVC repo holding this project's pipeline, with params edited by edit_params(dict)."""
    import shutil

    import yaml

    repo.mkdir(parents=True)
    for item in ("dvc.yaml", "params.yaml", ".gitignore", "stages", "src"):
        src = REPO / item
        (shutil.copytree(src, repo / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
         if src.is_dir() else shutil.copy(src, repo / item))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["bottleneck"].update(TEST_BACKBONE)
    params["train"]["head"].update(TEST_HEAD)
    edit_params(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], repo)
    run([BIN / "dvc", "init", "-q"], repo)
    run([BIN / "dvc", "config", "core.analytics", "false"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], repo)
    return repo


# The longest files first (measured with --durations on 2 cores), in the order `make test` hands
# whole files to its pytest-xdist workers (Makefile: --no-loadscope-reorder keeps this order; by
# default xdist would sort files by their number of tests), so no long file starts last and leaves
# the other workers idle. test_pipeline_e2e.py first: its worker builds the pipeline run the other
# two test_pipeline_* files copy, and they come after other long files, by when it is built.
LONGEST_FILES_FIRST = ("test_pipeline_e2e.py", "test_tune.py", "test_tune_grid.py", "test_pipeline_models.py",
                       "test_pipeline_runcache.py", "test_faults.py", "test_image_folder.py", "test_folder_edits.py",
                       "test_cnn.py", "test_feature_store.py", "test_many_machines.py", "test_stage_errors.py",
                       "test_near_duplicates.py", "test_folder_corpus.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))     # stable: order within a file kept


def pytest_sessionstart(session):
    """Under `make mutation`, mutmut first runs the suite once to learn which test calls which function
    (MUTANT_UNDER_TEST=stats). Stage scripts started by a test inherit that variable, and their
    recording hook then looks for mutmut's settings in the test's temporary directory and fails.
    Keep the mode in this process only; a mutant's own name stays in the environment, so a stage
    started by a test runs the mutant too and can kill it."""
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        from mutmut.mutation.trampoline import set_mutant_under_test

        set_mutant_under_test("stats")
        del os.environ["MUTANT_UNDER_TEST"]
