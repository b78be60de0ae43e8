"""Shared pieces of the model tests: a small labelled slice of the public sentiment posts."""

from __future__ import annotations

from pathlib import Path

from models.datasets import Example
from models.instructions import builtin
from models.recipes import tfns_sentiment


def sentiment_slice(data_dir: Path, train_n: int, test_n: int) -> tuple[list[Example], list[Example]]:
    """Disjoint train/test slices with every label in both (rows are ordered by nothing in particular)."""
    examples = tfns_sentiment(data_dir, builtin())
    seen: set[str] = set()
    unique = [e for e in examples if not (e.text in seen or seen.add(e.text))]  # type: ignore[func-returns-value]
    by_label: dict[str, list[Example]] = {}
    for example in unique:
        by_label.setdefault(example.label, []).append(example)
    train: list[Example] = []
    test: list[Example] = []
    for members in by_label.values():
        share_train = max(1, train_n * len(members) // len(unique))
        share_test = max(1, test_n * len(members) // len(unique))
        train.extend(members[:share_train])
        test.extend(members[share_train : share_train + share_test])
    return train, test


DIVIDEND = {
    "name": "dividend",
    "text": "Does this post report a dividend?",
    "labels": {
        "yes": "a company declares, raises, cuts or pays a dividend",
        "no": "anything else; no dividend is announced",
    },
}


def dividend_rows(data_dir: Path, per_label: int, skip: int = 0) -> list[tuple[str, str]]:
    """(text, yes|no) from the topic posts, `per_label` of each after skipping `skip` of each: a
    stand-in question no shipped model was trained on (a dividend is 2% of the posts)."""
    from models.recipes import tfn_topic

    by_label: dict[str, list[str]] = {"yes": [], "no": []}
    seen: set[str] = set()
    for example in tfn_topic(data_dir, builtin()):
        if example.text in seen:
            continue
        seen.add(example.text)
        by_label["yes" if example.label == "Dividend" else "no"].append(example.text)
    return [(text, label) for label, texts in by_label.items() for text in texts[skip : skip + per_label]]
