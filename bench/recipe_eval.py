"""A trained model's figures where the errors are: per source, per class, on the stand-in for other
sources, and its speed, for comparing recipes (docs/models.md, "Choosing the default recipe").

    .venv/bin/python bench/recipe_eval.py FOLDER [FOLDER ...] [--json OUT]

FOLDER is a registered version's folder (FINSENT_HOME/models/<version>). For each it measures, on
rows no recipe trains on:

- the default recipe's validation split (seed and share of the recipe): sentiment on the finance
  posts and on SEntFiN's single-entity headlines separately (accuracy, macro-F1, recall per
  class), topic (accuracy, macro-F1);
- SEntFiN's held-out headlines (15% by title hash; our stand-in for news from other sources):
  article sentiment on single-entity headlines, entity sentiment on every entity, the latter also
  on headlines whose entities disagree;
- items/s of the executor on the posts' validation texts with both article instructions, in the
  same run for every folder (compare folders measured together, never across runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.datasets import Example  # noqa: E402
from models.encoder import configure_cpu_threads  # noqa: E402
from models.executor import ExecutorOptions, InstructionExecutor  # noqa: E402
from models.instructions import InstructionSet, builtin  # noqa: E402
from models.recipes import get_recipe, tfns_sentiment  # noqa: E402
from models.registry import load_folder  # noqa: E402
from models.training import split  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from entity_sentiment import entity_figures, figures  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def validation_rows(data_dir: Path, instructions: InstructionSet) -> dict[str, list[Example]]:
    """The default recipe's validation rows by source: the split every recipe shares."""
    recipe = get_recipe("default")
    _, val = split(recipe.examples(data_dir, instructions), recipe.config.val_fraction, recipe.config.seed)
    posts = {e.text for e in tfns_sentiment(data_dir, instructions)}
    article = [e for e in val if e.entity is None]
    return {
        "sentiment_posts": [e for e in article if e.instruction == "sentiment" and e.text in posts],
        "sentiment_sentfin": [e for e in article if e.instruction == "sentiment" and e.text not in posts],
        "topic": [e for e in article if e.instruction == "topic"],
    }


def measure(executor: InstructionExecutor, data_dir: Path) -> dict[str, Any]:
    instructions = InstructionSet.of([builtin().get("sentiment"), builtin().get("topic")])
    result: dict[str, Any] = {}
    rows_by_source = validation_rows(data_dir, instructions)
    for name, rows in rows_by_source.items():
        instruction = "topic" if name == "topic" else "sentiment"
        answers = executor.classify([e.text for e in rows], instructions)
        labels = instructions.get(instruction).label_names
        result[name] = figures([e.label for e in rows], [a[instruction].label for a in answers], labels)

    held_out = entity_figures(executor, data_dir)
    result["heldout_article"] = held_out["article_single_entity"]
    result["heldout_entity"] = held_out["entity"]
    result["heldout_entity_disagreeing"] = held_out["disagreeing"]

    texts = [e.text for e in rows_by_source["sentiment_posts"]]
    executor.classify(texts[:64], instructions)  # warm-up
    began = time.perf_counter()
    executor.classify(texts, instructions)
    result["items_per_s"] = round(len(texts) / (time.perf_counter() - began), 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    configure_cpu_threads(0)
    report = {}
    for folder in args.folders:
        executor = load_folder(folder, folder.name, ExecutorOptions(device="cpu"))
        report[folder.name] = measure(executor, args.data)
        print(json.dumps({folder.name: report[folder.name]}, indent=1), flush=True)
    print()
    print("| version | posts acc / F1 | SEntFiN acc | topic acc / F1 | held-out article / entity | items/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in report.items():
        print(
            f"| {name} | {r['sentiment_posts']['accuracy']:.3f} / {r['sentiment_posts']['macro_f1']:.3f} "
            f"| {r['sentiment_sentfin']['accuracy']:.3f} "
            f"| {r['topic']['accuracy']:.3f} / {r['topic']['macro_f1']:.3f} "
            f"| {r['heldout_article']['accuracy']:.3f} / {r['heldout_entity']['accuracy']:.3f} "
            f"| {r['items_per_s']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
