"""Entity-level sentiment and the entity recogniser, measured on our own SEntFiN validation split.

    .venv/bin/python bench/entity_sentiment.py [--model FOLDER] [--train quick|heads] [--json OUT]

- entity-level accuracy / macro-F1 of the `sentiment` entity head on every entity of the held-out
  headlines (`models.recipes.SENTFIN_VALIDATION_SHARE`, never trained on), and on the headlines
  whose entities disagree; beside it the baseline of copying the article-level label to every
  entity (what the service did before entity scope);
- the recogniser: recall of SEntFiN's annotated entities on the held-out headlines (an entity
  counts as found when a found entity shares its folded words), precision and recall of company
  tagging on the hand-labelled headlines in tests/data/entity_headlines.jsonl, time per item;
- executor items/s on the held-out headlines with the recogniser's entities, with and without
  the entity scope, in the same run.

Without --model it trains a heads-only model (frozen MiniLM) on the training side of the split
plus the sentiment posts, a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from connectors.entities import COMPANY, EntityRecogniser, fold, load_directory
from models.datasets import Example
from models.encoder import load_encoder
from models.evaluation import classification_report
from models.executor import InstructionExecutor
from models.instructions import ARTICLE, InstructionSet, builtin
from models.recipes import sentfin_entities, sentfin_headlines, sentfin_single_entity, tfns_sentiment
from models.registry import load_folder
from models.training import TrainConfig, Trainer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAND_LABELLED = Path(__file__).resolve().parents[1] / "tests" / "data" / "entity_headlines.jsonl"
LABELS = ["negative", "neutral", "positive"]


def train(data_dir: Path, epochs: int) -> InstructionExecutor:
    instructions = InstructionSet.of([builtin().get("sentiment")])
    examples: list[Example] = [
        *tfns_sentiment(data_dir, instructions),
        *sentfin_single_entity(data_dir, instructions),
        *sentfin_entities(data_dir, instructions),
    ]
    tokenizer, encoder = load_encoder("minilm")
    config = TrainConfig(mode="heads", max_length=64, heads_epochs=epochs, progress=False)
    started = time.monotonic()
    result = Trainer(encoder, tokenizer, instructions, config).fit(examples)
    print(f"trained heads on {len(examples)} examples in {time.monotonic() - started:.0f} s")
    return InstructionExecutor(result.model, tokenizer, "bench-heads")


def figures(truth: list[str], predicted: list[str], labels: list[str] = LABELS) -> dict[str, Any]:
    """Accuracy, macro-F1, n, and recall per sentiment class where the labels are sentiment's."""
    report = classification_report(truth, predicted, labels)
    out: dict[str, Any] = {
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "n": len(truth),
    }
    recall = {label: round(report["per_class"][label]["recall"], 3) for label in labels if label in LABELS}
    return {**out, "recall": recall} if recall else out


def entity_figures(executor: InstructionExecutor, data_dir: Path) -> dict[str, object]:
    """On the held-out headlines: entity sentiment (all, and where the entities disagree), the
    baseline of copying the article's label, and the article label on single-entity headlines."""
    headlines = sentfin_headlines(data_dir, validation=True)
    sentiment = InstructionSet.of([builtin().get("sentiment")])
    answers = executor.classify_items(
        [h.title for h in headlines], sentiment, [[name for name, _ in h.entities] for h in headlines]
    )
    truth, predicted, copied, truth_d, predicted_d, copied_d = [], [], [], [], [], []
    single_t, single_p = [], []
    conflicting = 0
    for headline, answer in zip(headlines, answers, strict=True):
        article = answer.article["sentiment"].label
        if len(headline.entities) == 1:
            single_t.append(headline.entities[0][1])
            single_p.append(article)
        labels = []
        for name, label in headline.entities:
            guess = answer.entities[name].outputs["sentiment"].label
            labels.append(guess)
            truth.append(label)
            predicted.append(guess)
            copied.append(article)
            if headline.disagree:
                truth_d.append(label)
                predicted_d.append(guess)
                copied_d.append(article)
        conflicting += headline.disagree and len(set(labels)) > 1

    return {
        "entity": figures(truth, predicted),
        "entity_copy_article": figures(truth, copied),
        "disagreeing": figures(truth_d, predicted_d),
        "disagreeing_copy_article": figures(truth_d, copied_d),
        "article_single_entity": figures(single_t, single_p),
        "disagreeing_headlines": sum(h.disagree for h in headlines),
        "disagreeing_headlines_with_conflicting_predictions": conflicting,
    }


def recogniser_figures(recogniser: EntityRecogniser, data_dir: Path) -> dict[str, object]:
    headlines = sentfin_headlines(data_dir, validation=True)
    started = time.perf_counter()
    found = [recogniser.find(h.title) for h in headlines]
    per_item_ms = (time.perf_counter() - started) / len(headlines) * 1000
    gold = hits = 0
    for headline, entities in zip(headlines, found, strict=True):
        got = [set(fold(e.text)) for e in entities]
        for name, _ in headline.entities:
            words = set(fold(name))
            gold += 1
            hits += any(words & g for g in got)
    tp = fp = fn = 0
    for line in HAND_LABELLED.read_text().splitlines():
        row = json.loads(line)
        tagged = {e.ticker for e in recogniser.find(row["text"]) if e.kind == COMPANY}
        expected = set(row["companies"])
        tp, fp, fn = tp + len(tagged & expected), fp + len(tagged - expected), fn + len(expected - tagged)
    return {
        "sentfin_recall": round(hits / gold, 4),
        "sentfin_entities": gold,
        "found_per_headline": round(sum(len(f) for f in found) / len(found), 2),
        "hand_labelled_precision": round(tp / max(tp + fp, 1), 4),
        "hand_labelled_recall": round(tp / max(tp + fn, 1), 4),
        "hand_labelled": {"tp": tp, "fp": fp, "fn": fn},
        "ms_per_item": round(per_item_ms, 3),
    }


def throughput(
    executor: InstructionExecutor, recogniser: EntityRecogniser, data_dir: Path
) -> dict[str, float]:
    texts = [h.title for h in sentfin_headlines(data_dir, validation=True)] * 2
    entities = [[e.text for e in recogniser.find(t)] for t in texts]
    both = builtin()
    article_only = InstructionSet.of(replace(i, scope=ARTICLE) for i in both.instructions)
    executor.classify(texts[:64], both)  # warm-up
    rates = {}
    for name, run in (
        ("without_entities", lambda: executor.classify(texts, article_only)),
        ("with_entities", lambda: executor.classify_items(texts, both, entities)),
        ("without_entities_again", lambda: executor.classify(texts, article_only)),
    ):
        started = time.perf_counter()
        run()
        rates[name] = round(len(texts) / (time.perf_counter() - started), 1)
    rates["entities_per_item"] = round(sum(map(len, entities)) / len(texts), 2)
    rates["ratio"] = round(rates["with_entities"] / rates["without_entities"], 3)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, help="a model version folder (FINSENT_HOME/models/V)")
    parser.add_argument("--heads-epochs", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    executor = load_folder(args.model, args.model.name) if args.model else train(args.data, args.heads_epochs)
    recogniser = EntityRecogniser(load_directory(args.data / "companies" / "sec_company_tickers.json"))
    report = {
        "model": executor.version,
        "sentiment_by_entity": entity_figures(executor, args.data),
        "recogniser": recogniser_figures(recogniser, args.data),
        "items_per_s": throughput(executor, recogniser, args.data),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
