"""The model-side command line as an operator uses it: instructions, train, models, classify, evaluate."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from models.text import prepare_text
from tests.conftest import FINSENT
from tests.model_helpers import sentiment_slice


def run(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FINSENT_HOME": str(home), "FINSENT_DATABASE_URL": "", "FINSENT_LOG_FORMAT": "text"}
    result = subprocess.run(
        [FINSENT, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if ok:
        assert result.returncode == 0, f"finsent {' '.join(args)}:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_line(line: dict[str, object], instruction: str, labels: set[str]) -> None:
    answer = line[instruction]
    assert isinstance(answer, dict)
    assert answer["label"] in labels
    assert set(answer["distribution"]) == labels
    assert math.isclose(sum(answer["distribution"].values()), 1.0, abs_tol=1e-4)


SENTIMENT = {"negative", "neutral", "positive"}


@pytest.mark.heavy
def test_classify_round_trip_jsonl_and_csv_with_runtime_instructions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    texts = ["Oil prices surge as OPEC cuts output", "Bank of England raises rates", "Acme recalls toasters"]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"id": f"n{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    csv_path = tmp_path / "in.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["title", "text"])
        writer.writerows([["t", text] for text in texts])

    run(
        home, "instructions", "add", "--name", "urgency", "--text", "How urgent is this for a trader?",
        "--label", "urgent:needs attention now", "--label", "routine:can wait",
    )  # fmt: skip
    run(home, "instructions", "disable", "topic")
    listing = run(home, "instructions", "list").stdout
    assert "urgency" in listing and "disabled" in listing.split("topic")[1].splitlines()[0]

    run(home, "classify", "--input", str(jsonl), "--output", str(tmp_path / "a.jsonl"))
    lines = read_jsonl(tmp_path / "a.jsonl")
    assert [line["id"] for line in lines] == ["n0", "n1", "n2"]
    for line in lines:
        # topic disabled, urgency added at runtime; entities found, judged by entity-scoped sentiment
        assert set(line) == {"id", "sentiment", "urgency", "entities"}
        check_line(line, "sentiment", SENTIMENT)
        for entity in line["entities"].values():
            check_line(entity, "sentiment", SENTIMENT)
            assert "urgency" not in entity  # article scope only
        check_line(line, "urgency", {"urgent", "routine"})
        assert line["urgency"]["zero_shot"] is True

    assert {k: (v["kind"], v["ticker"]) for k, v in lines[0]["entities"].items()} == {
        "Oil": ("other", None),
        "OPEC": ("other", None),
    }
    assert set(lines[1]["entities"]) == {"Bank of England"}

    run(home, "instructions", "enable", "topic")
    run(home, "classify", "--input", str(csv_path), "--output", str(tmp_path / "b.jsonl"))
    lines_b = read_jsonl(tmp_path / "b.jsonl")
    assert [line["id"] for line in lines_b] == [0, 1, 2]
    assert all("topic" in line for line in lines_b)
    # Same model, same texts: both input formats give the same answers.
    assert [line["sentiment"] for line in lines] == [line["sentiment"] for line in lines_b]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "txt": "no text field"}\n')
    failed = run(home, "classify", "--input", str(bad), "--output", str(tmp_path / "c.jsonl"), ok=False)
    assert failed.returncode == 1 and "no text field" in failed.stderr


@pytest.mark.heavy
def test_train_register_activate_evaluate_rollback(tmp_path: Path, data_dir: Path) -> None:
    home = tmp_path / "home"
    train, test = sentiment_slice(data_dir, train_n=300, test_n=120)
    label_names = {"negative": "bearish", "positive": "bullish", "neutral": "flat"}
    for name, rows in (("train", train), ("test", test)):
        with (tmp_path / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["headline", "y"])
            writer.writerows([[e.text, label_names[e.label]] for e in rows])
    mapping = "bearish=negative,bullish=positive,flat=neutral"

    evaluate = ("evaluate", "--data", str(tmp_path / "test.csv"), "--instruction", "sentiment", "--json",
                "--label-map", mapping, "--text-column", "headline", "--label-column", "y")  # fmt: skip
    before = run(home, *evaluate)
    zero_shot = json.loads(before.stdout)
    assert zero_shot["model_version"].startswith("base:")

    trained = run(home, "train", "--data", str(tmp_path / "train.csv"), "--instruction", "sentiment",
                  "--label-map", mapping, "--text-column", "headline", "--label-column", "y",
                  "--mode", "heads", "--seed", "3")  # fmt: skip
    assert "registered and activated" in trained.stdout
    listing = run(home, "models", "list").stdout
    version = listing.split()[0]
    assert "active" in listing and "sentiment: acc=" in listing

    after = run(home, *evaluate)
    report = json.loads(after.stdout)
    assert report["model_version"] == version
    assert report["accuracy"] > zero_shot["accuracy"]
    assert report["n"] == len(test)

    refused = run(home, "models", "rollback", ok=False)
    assert refused.returncode == 1 and "nothing to roll back" in refused.stderr

    # A second version from the same data; `models compare` puts both validations side by side.
    run(home, "train", "--data", str(tmp_path / "train.csv"), "--instruction", "sentiment",
        "--label-map", mapping, "--text-column", "headline", "--label-column", "y",
        "--mode", "heads", "--seed", "4")  # fmt: skip
    second = run(home, "models", "list").stdout.splitlines()[-1].split()[0]
    assert second != version
    compared = json.loads(run(home, "models", "compare", version, second, "--json").stdout)
    for v in (version, second):
        saved = json.loads((home / "models" / v / "metrics.json").read_text())["validation"]["sentiment"]
        figures = compared["validation"][v]["sentiment"]
        assert figures["accuracy"] == round(saved["accuracy"], 4) and figures["n"] == saved["n"]
        assert figures["ece"] == saved["calibration"]["ece_after"]
    assert compared["data_fingerprint"][version] == compared["data_fingerprint"][second]
    table = run(home, "models", "compare", version, second).stdout
    assert "sentiment" in table and "macro_f1" in table and "validation splits are comparable" in table

    # The second version teaches a third by distillation, on the gold rows and unlabelled texts.
    seen = {e.text for e in train} | {e.text for e in test}
    more, _ = sentiment_slice(data_dir, train_n=900, test_n=0)
    unlabelled = sorted({e.text for e in more} - seen)
    (tmp_path / "news.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in unlabelled))
    distilled = run(home, "train", "--data", str(tmp_path / "train.csv"), "--instruction", "sentiment",
                    "--label-map", mapping, "--text-column", "headline", "--label-column", "y",
                    "--mode", "heads", "--seed", "3", "--teacher", second,
                    "--texts", str(tmp_path / "news.jsonl"), "--no-activate")  # fmt: skip
    assert f"distilling {second}" in distilled.stdout and "student agrees on" in distilled.stdout
    student = run(home, "models", "list").stdout.splitlines()[-1]
    assert f"distilled from {second}" in student and "candidate" in student
    summary = json.loads((home / "models" / student.split()[0] / "metrics.json").read_text())
    # Counted as the trainer dedups: prepared and case-folded.
    assert summary["counts"]["distillation"]["unlabelled"] == len(
        {prepare_text(t).casefold() for t in unlabelled}
    )
    assert summary["distillation"]["agreement"]["sentiment"] > 0.8
    assert summary["distillation"]["teacher_validation"]["sentiment"]["n"] == saved["n"]

    unmapped = run(home, "train", "--data", str(tmp_path / "train.csv"), "--instruction", "sentiment",
                   "--text-column", "headline", "--label-column", "y", ok=False)  # fmt: skip
    assert unmapped.returncode == 1 and "labels not in instruction 'sentiment'" in unmapped.stderr
    assert "'bearish'" in unmapped.stderr


@pytest.mark.parametrize("recipe", ["nope"])
def test_unknown_recipe_is_a_clear_error(tmp_path: Path, recipe: str) -> None:
    result = run(tmp_path / "home", "train", "--recipe", recipe, ok=False)
    assert result.returncode == 1 and "unknown recipe" in result.stderr
    assert "Traceback" not in result.stderr  # the operator's mistake: one line, not a stack


def test_a_distillation_recipe_without_a_teacher_is_a_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path / "home", "train", "--recipe", "distil", ok=False)
    assert result.returncode == 1 and "give --teacher VERSION" in result.stderr
    assert "Traceback" not in result.stderr
