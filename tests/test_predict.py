"""imgclf-predict against the exported model's own output: probabilities, --top, grey and colour
models, and what it says when the model or a file is missing."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest

from imgclf.models.predict import load_image, main

NAMES = ["coat", "shirt", "bag", "boot"]


def _model(tmp_path, shape):
    """A small exported-style classifier: uint8 images of `shape` in, class probabilities out."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=shape, dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(len(NAMES), activation="softmax")(keras.layers.Dense(16, activation="relu")(x))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "classifier.keras"
    model.save(path)
    (tmp_path / "classifier.json").write_text(json.dumps({"class_names": NAMES, "input_shape": list(shape)}))
    return model, path


def _printed(out: str) -> dict[str, list[tuple[str, float]]]:
    rows = {}
    for line in out.strip().splitlines():
        path, _, rest = line.rpartition(": ")
        rows[path] = [(m[1], float(m[2])) for m in re.finditer(r"(\w+) ([\d.]+)", rest)]
    return rows


@pytest.mark.parametrize("shape", [(12, 12), (12, 12, 3)], ids=["grey", "colour"])
def test_predict_prints_the_exported_models_own_probabilities(tmp_path, capsys, shape):
    model, path = _model(tmp_path, shape)
    rng = np.random.default_rng(1)
    files = []
    for i, size in enumerate([(12, 12), (30, 20), (7, 9)]):         # same size, larger, smaller
        f = tmp_path / f"img{i}.png"
        cv2.imwrite(str(f), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
        files.append(f)
    assert main([*map(str, files), "--model", str(path), "--top", "2"]) == 0
    printed = _printed(capsys.readouterr().out)
    expected = model.predict(np.stack([load_image(f, shape) for f in files]), verbose=0)
    for f, p in zip(files, expected):
        order = np.argsort(-p, kind="stable")[:2]
        assert printed[str(f)] == [(NAMES[i], round(float(p[i]), 3)) for i in order]
    assert main([str(files[0]), "--model", str(path), "--top", "10"]) == 0      # more than there are classes
    row = _printed(capsys.readouterr().out)[str(files[0])]
    assert len(row) == len(NAMES) and sum(p for _, p in row) == pytest.approx(1, abs=0.005)


def test_missing_model_file_and_bad_top_are_exit_2_with_a_message(tmp_path, capsys):
    _, path = _model(tmp_path, (12, 12))
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), np.zeros((12, 12), np.uint8))
    assert main([str(good), "--model", str(tmp_path / "none.keras")]) == 2
    assert "none.keras (and its .json) not found; run `dvc repro` first" in capsys.readouterr().err
    assert main([str(good), str(tmp_path / "gone.png"), "--model", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"{tmp_path / 'gone.png'}: no such file" in captured.err and "1 of 2 file(s) could not be read" in captured.err
    assert captured.out.startswith(f"{good}: ")                      # the readable file is still classified
    assert main([str(good), "--model", str(path), "--top", "0"]) == 2
    assert "--top 0: expected 1 or more" in capsys.readouterr().err
