"""Metrics of any task that gives one class per item (a text, a token), in plain NumPy.

From true and predicted class ids: accuracy, macro-F1, per-class F1 and the confusion matrix
(no framework state to reset between evaluations). Entity spans, BLEU and other structured
metrics come from their own libraries in the apps that need them.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(true_ids: np.ndarray, predicted_ids: np.ndarray, classes: int) -> np.ndarray:
    """``[true, predicted]`` counts."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true_ids), np.asarray(predicted_ids)), 1)
    return matrix


def classification_report(
    true_ids: np.ndarray, predicted_ids: np.ndarray, label_names: list[str]
) -> dict:
    """Accuracy, macro-F1 (the unweighted mean of per-class F1) and the confusion matrix.

    A class that is neither present nor predicted has no defined F1 and is left out of the
    mean; a class present but never predicted (or the reverse) counts as F1 = 0.
    """
    matrix = confusion_matrix(true_ids, predicted_ids, len(label_names))
    true_positives = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    per_class = {}
    for index, name in enumerate(label_names):
        if predicted[index] + actual[index] == 0:
            continue
        per_class[name] = 2 * true_positives[index] / (predicted[index] + actual[index])
    total = int(matrix.sum())
    return {
        "examples": total,
        "accuracy": float(true_positives.sum() / total) if total else float("nan"),
        "macro_f1": float(np.mean(list(per_class.values()))) if per_class else float("nan"),
        "f1_per_class": {name: float(value) for name, value in per_class.items()},
        "label_names": list(label_names),
        "confusion_matrix": matrix.tolist(),
    }


def format_report(report: dict) -> str:
    """Human-readable accuracy, macro-F1 and a confusion matrix with row/column names."""
    names = report["label_names"]
    width = max(len("true \\ predicted"), *(len(n) for n in names)) + 2
    lines = [
        f"examples  {report['examples']}",
        f"accuracy  {report['accuracy']:.4f}",
        f"macro-F1  {report['macro_f1']:.4f}",
        "",
        "true \\ predicted".ljust(width) + "".join(n.rjust(width) for n in names),
    ]
    for name, row in zip(names, report["confusion_matrix"], strict=True):
        lines.append(name.ljust(width) + "".join(str(c).rjust(width) for c in row))
    return "\n".join(lines)
