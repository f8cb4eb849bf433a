"""Metrics a reviewer reads in `dvc metrics diff`, and the tables behind the DVC plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, f1_score


def metric_key(name: str) -> str:
    """Class names as metric keys: 'T-shirt/top' -> 't_shirt_top'."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def split_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    labels = list(range(len(class_names)))
    report = classification_report(y_true, y_pred, labels=labels, target_names=class_names,
                                   output_dict=True, zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)), 4),
        "images": int(len(y_true)),
        "f1": {metric_key(c): round(float(report[c]["f1-score"]), 4) for c in class_names},
    }


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    labels = list(range(len(class_names)))
    report = classification_report(y_true, y_pred, labels=labels, target_names=class_names,
                                   output_dict=True, zero_division=0)
    return pd.DataFrame([{"class": c, "precision": round(report[c]["precision"], 4),
                          "recall": round(report[c]["recall"], 4), "f1": round(report[c]["f1-score"], 4),
                          "support": int(report[c]["support"])} for c in class_names])


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str], ids=None,
                   confidence: np.ndarray | None = None, label_suspect: np.ndarray | None = None) -> pd.DataFrame:
    """One row per image (actual, predicted), the shape DVC's confusion template reads; with the
    image id and the predicted class's probability, the same file is the per-image record that
    `imgclf.review.compare` pairs across commits (the template ignores the extra columns)."""
    names = np.asarray(class_names)
    rows = {"actual": names[y_true], "predicted": names[y_pred]}
    if ids is not None:
        rows = {"id": np.asarray(ids), **rows}
    if confidence is not None:
        rows["confidence"] = np.round(np.asarray(confidence, np.float64), 4)
    if label_suspect is not None:          # 1: the label audit suspects this image's given label
        rows["label_suspect"] = np.asarray(label_suspect, bool).astype(np.int8)
    return pd.DataFrame(rows)
