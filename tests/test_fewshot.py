"""Few-shot heads, the bootstrap behind `teach`'s decision, and the labelling queue, on small
synthetic geometries where the right answer is known."""

from __future__ import annotations

import pytest
import torch

from models import active_learning
from models.fewshot import LinearHead, fit_head, out_of_fold, stratified_folds
from models.teach import bootstrap_difference


def _clusters(n: int, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Two separable clusters, `n` items each, along the first two axes of a 16-d space."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 16, generator=generator) * 0.3 + torch.eye(16)[0] * 2
    b = torch.randn(n, 16, generator=generator) * 0.3 + torch.eye(16)[1] * 2
    return torch.cat([a, b]), ["a"] * n + ["b"] * n


def _wrong_prior() -> LinearHead:
    # The descriptions point the wrong way: a zero-shot head that swaps the two labels.
    weight = torch.zeros(2, 16)
    weight[0, 1] = weight[1, 0] = 20.0
    return LinearHead(("a", "b"), weight, torch.zeros(2))


def test_fit_head_follows_labels_away_from_a_wrong_prior() -> None:
    x, y = _clusters(8)
    prior = _wrong_prior()
    assert sum(p == t for p, t in zip(prior.predict(x), y, strict=True)) == 0
    head = fit_head(x, y, prior)
    test_x, test_y = _clusters(50, seed=1)
    accuracy = sum(p == t for p, t in zip(head.predict(test_x), test_y, strict=True)) / len(test_y)
    assert accuracy > 0.95
    # Out of fold the same holds: no item is judged by a head that saw it.
    assert out_of_fold(x, y, prior, k=4) == y


def test_head_round_trips_and_rejects_bad_shapes() -> None:
    head = fit_head(*_clusters(4), _wrong_prior())
    again = LinearHead.from_dict(head.to_dict())
    assert again.labels == head.labels and torch.equal(again.weight, head.weight)
    bad = {**head.to_dict(), "bias": [0.0]}
    with pytest.raises(ValueError, match="do not fit"):
        LinearHead.from_dict(bad)


def test_stratified_folds_spread_every_label() -> None:
    targets = ["x"] * 10 + ["y"] * 5
    folds = stratified_folds(targets, 5)
    assert sorted(i for f in folds for i in f) == list(range(15))
    assert all(sum(targets[i] == "y" for i in f) == 1 for f in folds)


def test_bootstrap_interval_excludes_zero_only_for_a_real_gain() -> None:
    truth = [0, 1] * 20
    assert bootstrap_difference(truth, truth, truth, 2) == (0.0, 0.0)
    better = bootstrap_difference(truth, truth, [0] * 40, 2)
    assert better[0] > 0.2
    one_flip = truth.copy()
    one_flip[0] = 1
    low, high = bootstrap_difference(truth, truth, one_flip, 2)
    assert low <= 0.0 < high  # one item of forty: not evidence


def test_queue_seeks_an_unlabelled_label_then_asks_about_uncertain_items() -> None:
    x, _ = _clusters(20)
    probs = torch.tensor([[0.9, 0.1]] * 20 + [[0.4, 0.6]] * 20)
    picks = active_learning.select(probs, ["a", "b"], x, 4, x[:6], ["a"] * 6)
    assert len({p.index for p in picks}) == 4
    assert picks[0].reason == "seeking b" and picks[0].index >= 20
    # With both labels covered evenly, it asks where the head is least sure.
    even = active_learning.select(probs, ["a", "b"], x, 2, x[[0, 1, 20, 21]], ["a", "a", "b", "b"])
    assert all(p.reason == "uncertain" and p.index >= 20 for p in even)
