from __future__ import annotations

import pytest

from models.evaluation import classification_report


def test_report_figures() -> None:
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "a", "a"]
    report = classification_report(truth, pred, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["per_class"]["a"]["precision"] == pytest.approx(2 / 4)
    assert report["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    assert report["per_class"]["c"]["f1"] == 0.0  # never predicted: counts as 0 in the macro average
    f1_a = 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)
    f1_b = 0.5
    assert report["macro_f1"] == pytest.approx((f1_a + f1_b + 0.0) / 3)
    assert report["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [1, 0, 0]]


def test_unknown_labels_are_an_error() -> None:
    with pytest.raises(ValueError, match="outside the label set"):
        classification_report(["a"], ["z"], ["a", "b"])
