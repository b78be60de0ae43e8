"""Classification metrics, written out so that every figure in a model's metrics.json is explained
by twenty lines of code rather than a library default (macro-F1 counts a class with no predictions
as F1 = 0, which is what exposes a model that never predicts the rare topics)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({y for y in [*y_true, *y_pred] if y not in index})
    if unknown:
        raise ValueError(f"labels outside the label set: {unknown}")
    confusion = [[0] * len(labels) for _ in labels]
    for truth, pred in zip(y_true, y_pred, strict=True):
        confusion[index[truth]][index[pred]] += 1
    per_class: dict[str, dict[str, float | int]] = {}
    for i, label in enumerate(labels):
        tp = confusion[i][i]
        predicted = sum(row[i] for row in confusion)
        support = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    present = [label for label in labels if per_class[label]["support"]]
    total = len(y_true)
    return {
        "n": total,
        "accuracy": sum(confusion[i][i] for i in range(len(labels))) / total if total else 0.0,
        "macro_f1": sum(float(per_class[label]["f1"]) for label in present) / len(present)
        if present
        else 0.0,
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": confusion,
    }


def format_report(name: str, report: dict[str, Any]) -> str:
    lines = [
        f"{name}: n={report['n']} accuracy={report['accuracy']:.4f} macro_f1={report['macro_f1']:.4f}",
        f"  {'label':<30} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}",
    ]
    for label, figures in report["per_class"].items():
        lines.append(
            f"  {label:<30} {figures['precision']:>9.3f} {figures['recall']:>9.3f} "
            f"{figures['f1']:>9.3f} {figures['support']:>8d}"
        )
    return "\n".join(lines)
