"""The numbers a reviewer reads (macro-F1, per-class F1, confusion rows) on hand-computed cases,
and the soft vote behind `train.ensemble`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imgclf.review.evaluation import confusion_rows, metric_key, per_class_table, split_metrics

NAMES = ["T-shirt/top", "Trouser", "Bag"]
# 8 images. Per class (tp, fp, fn): T-shirt (2, 1, 1), Trouser (1, 1, 2), Bag (2, 1, 0)
Y_TRUE = np.array([0, 0, 0, 1, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 0, 2, 2, 2])


def test_split_metrics_on_a_hand_computed_case():
    m = split_metrics(Y_TRUE, Y_PRED, NAMES)
    f1 = {"t_shirt_top": 2 / 3, "trouser": 0.4, "bag": 0.8}        # 2PR/(P+R) per class
    assert m == {"accuracy": 0.625, "macro_f1": round(sum(f1.values()) / 3, 4), "images": 8,
                 "f1": {k: round(v, 4) for k, v in f1.items()}}
    assert m["macro_f1"] == 0.6222


def test_a_class_never_predicted_or_absent_scores_zero_not_an_error():
    m = split_metrics(np.array([0, 0, 1]), np.array([0, 0, 0]), NAMES)
    assert m["f1"] == {"t_shirt_top": 0.8, "trouser": 0.0, "bag": 0.0}
    assert m["macro_f1"] == round(0.8 / 3, 4)


def test_per_class_table_rows_match_the_metrics():
    table = per_class_table(Y_TRUE, Y_PRED, NAMES)
    assert table.to_dict("records") == [
        {"class": "T-shirt/top", "precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3},
        {"class": "Trouser", "precision": 0.5, "recall": 0.3333, "f1": 0.4, "support": 3},
        {"class": "Bag", "precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}]


def test_confusion_rows_are_one_row_per_image_in_order():
    rows = confusion_rows(Y_TRUE, Y_PRED, NAMES)
    assert rows.to_dict("list") == {"actual": [NAMES[i] for i in Y_TRUE], "predicted": [NAMES[i] for i in Y_PRED]}
    counts = pd.crosstab(rows["actual"], rows["predicted"])
    assert counts.loc["Trouser", "T-shirt/top"] == 1 and counts.loc["Trouser", "Bag"] == 1


def test_metric_keys_are_stable_identifiers():
    assert [metric_key(n) for n in ["T-shirt/top", "Ankle boot", "Sandal"]] == ["t_shirt_top", "ankle_boot", "sandal"]


def test_soft_vote_averages_the_members_probabilities():
    keras = pytest.importorskip("keras")
    from imgclf.models.voting import soft_vote

    def member(bias):
        inputs = keras.Input(shape=(2,))
        dense = keras.layers.Dense(3, activation="softmax", kernel_initializer="zeros",
                                   bias_initializer=keras.initializers.Constant(bias))
        return keras.Model(inputs, dense(inputs))

    a, b = member([2.0, 0.0, 0.0]), member([0.0, 0.0, 3.0])
    x = np.zeros((4, 2), np.float32)
    pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    vote = soft_vote([a, b])
    np.testing.assert_allclose(vote.predict(x, verbose=0), (pa + pb) / 2, rtol=1e-6)
    assert vote.predict(x, verbose=0).argmax(1).tolist() == [2, 2, 2, 2]      # b's stronger opinion wins
    assert soft_vote([a]) is a                                                 # one member: no wrapper


def test_metrics_are_rounded_to_four_places_and_absent_classes_raise_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")             # sklearn warns when zero_division is left to it
        m = split_metrics(np.array([0, 0, 1]), np.array([0, 1, 1]), NAMES)    # bag: never seen, never predicted
        table = per_class_table(np.array([0, 0, 1]), np.array([0, 1, 1]), NAMES)
    assert m["accuracy"] == 0.6667 and m["f1"] == {"t_shirt_top": 0.6667, "trouser": 0.6667, "bag": 0.0}
    assert m["macro_f1"] == 0.4444
    assert table.to_dict("records")[2] == {"class": "Bag", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_keys_drop_leading_and_trailing_punctuation():
    assert metric_key("(Other)") == "other" and metric_key(" T-shirt/top ") == "t_shirt_top"


def test_float32_confidences_are_rounded_as_the_numbers_they_are():
    """Keras predicts float32. 0.83935 is stored as 0.83934998..., so the per-image CSV must say
    0.8393 (rounding in float32 says 0.8394), and 0.000108 must read 0.0001, not 1e-04."""
    probs = np.float32([0.83935, 0.000108])
    rows = confusion_rows(np.array([0, 1]), np.array([0, 1]), ["a", "b"], ids=["x", "y"], confidence=probs)
    assert rows.to_csv(index=False) == "id,actual,predicted,confidence\nx,a,a,0.8393\ny,b,b,0.0001\n"


def test_the_embedding_projection_is_computed_once_per_set_of_features(tmp_path, monkeypatch):
    """A head experiment on the same features reuses the t-SNE coordinates; other features do not."""
    from imgclf.review import embedding

    features = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    first = embedding.cached_projection(features, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def no_tsne(_):
        raise AssertionError("t-SNE ran again")

    monkeypatch.setattr(embedding, "project", no_tsne)
    np.testing.assert_array_equal(embedding.cached_projection(features, tmp_path), first)
    with pytest.raises(AssertionError, match="ran again"):
        embedding.cached_projection(features + 1, tmp_path)
