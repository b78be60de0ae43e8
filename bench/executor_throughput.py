"""Instruction executor throughput and accuracy against a naive baseline, measured in one run.

Baseline: a Hugging Face `pipeline("feature-extraction")` called once per item and per
instruction (the way one would wire two classifiers naively), followed by the same heads.
Executor: one tokenisation and one encoder pass per length-sorted, token-budgeted batch for all
instructions. Both run the same model (the active registered version, else the base encoder
zero-shot) on the same held-out validation rows of the default recipe, so accuracy is comparable.

Prints items/s for each, the ratio, and accuracy per instruction. On a CUDA machine it also
sweeps batch sizes in bf16. Run with `make bench-executor` or `python bench/executor_throughput.py`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import pipeline  # noqa: E402

from connectors.db.engine import make_engine  # noqa: E402
from connectors.db.migrate import upgrade  # noqa: E402
from models import instruction_store  # noqa: E402
from models.datasets import Example  # noqa: E402
from models.encoder import configure_cpu_threads  # noqa: E402
from models.evaluation import classification_report  # noqa: E402
from models.executor import ExecutorOptions, InstructionExecutor  # noqa: E402
from models.instructions import InstructionSet  # noqa: E402
from models.recipes import get_recipe  # noqa: E402
from models.registry import ModelRegistry, base_executor  # noqa: E402
from models.training import split  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402


def held_out(data_dir: Path, instructions: InstructionSet, per_instruction: int, seed: int) -> list[Example]:
    """The default recipe's own validation rows (never trained on), a sample per instruction."""
    recipe = get_recipe("default")
    _, val = split(recipe.examples(data_dir, instructions), recipe.config.val_fraction, recipe.config.seed)
    rng = random.Random(seed)
    sample: list[Example] = []
    for name in ("sentiment", "topic"):
        rows = [e for e in val if e.instruction == name]
        sample.extend(rng.sample(rows, min(per_instruction, len(rows))))
    rng.shuffle(sample)
    return sample


def accuracy(
    rows: list[Example], predictions: list[dict[str, str]], instructions: InstructionSet
) -> dict[str, float]:
    result = {}
    for name in ("sentiment", "topic"):
        pairs = [(e.label, p[name]) for e, p in zip(rows, predictions, strict=True) if e.instruction == name]
        labels = instructions.get(name).label_names
        report = classification_report([t for t, _ in pairs], [p for _, p in pairs], labels)
        result[name] = report["accuracy"]
    return result


def run_executor(
    executor: InstructionExecutor, rows: list[Example], instructions: InstructionSet
) -> tuple[float, list[dict[str, str]]]:
    texts = [e.text for e in rows]
    executor.classify(texts[:64], instructions)  # warm-up
    began = time.perf_counter()
    results = executor.classify(texts, instructions)
    seconds = time.perf_counter() - began
    return len(texts) / seconds, [{name: out.label for name, out in r.items()} for r in results]


def run_baseline(
    executor: InstructionExecutor, rows: list[Example], instructions: InstructionSet
) -> tuple[float, list[dict[str, str]]]:
    """One pipeline call per item per instruction, then that instruction's head (or zero-shot)."""
    extractor = pipeline(
        "feature-extraction",
        model=executor.model.encoder,
        tokenizer=executor.tokenizer,
        device=executor.device,
    )
    active = instructions.active
    extractor(rows[0].text)  # warm-up
    predictions: list[dict[str, str]] = []
    began = time.perf_counter()
    for example in rows:
        answer = {}
        for instruction in active:
            hidden = torch.tensor(extractor(example.text, truncation=True, max_length=128)[0])
            pooled = hidden.mean(dim=0, keepdim=True)
            probs, _ = executor.probabilities(pooled, instruction)
            answer[instruction.name] = instruction.label_names[int(probs.argmax())]
        predictions.append(answer)
    seconds = time.perf_counter() - began
    return len(rows) / seconds, predictions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000, help="held-out rows per instruction")
    parser.add_argument("--baseline-items", type=int, default=300, help="rows for the slow baseline")
    parser.add_argument("--model", help="model version (default: the active one)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settings = load_settings()
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    instructions = InstructionSet.of(
        [i for i in instruction_store.current(engine).instructions if i.name in {"sentiment", "topic"}]
    )
    registry = ModelRegistry(settings.models_dir, engine)
    version = args.model or registry.active_version()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    configure_cpu_threads(settings.inference_cpu_threads)
    fp32 = ExecutorOptions(device=device, precision="fp32")

    def load(options: ExecutorOptions) -> InstructionExecutor:
        return (
            registry.load(version, options)
            if version
            else base_executor(settings.encoder, options, settings.cache_dir)
        )

    rows = held_out(settings.data_dir, instructions, args.items, args.seed)
    base_rows = rows[: args.baseline_items]
    reference = load(fp32)
    print(
        f"model {reference.version} on {device} ({torch.get_num_threads()} threads), "
        f"{len(rows)} held-out rows"
    )
    baseline_rate, baseline_pred = run_baseline(reference, base_rows, instructions)
    baseline_acc = accuracy(base_rows, baseline_pred, instructions)
    configs = [("executor fp32", fp32)]
    if device == "cpu":
        configs.append(("executor int8", replace(fp32, precision="int8")))
    else:
        configs.append(("executor bf16", replace(fp32, precision="bf16")))
    header = (
        f"{'configuration':<28} {'items/s':>9} {'ratio':>7} {'sent acc':>9} {'topic acc':>9} {'(subset)':>18}"
    )
    print(header)
    print(f"{'baseline: pipeline/item/instr':<28} {baseline_rate:>9.1f} {1.0:>7.2f} {'':>9} {'':>9} "
          f"{baseline_acc['sentiment']:>8.4f} {baseline_acc['topic']:>8.4f}")  # fmt: skip
    for name, options in configs:
        executor = reference if options == fp32 else load(options)
        rate, predicted = run_executor(executor, rows, instructions)
        acc = accuracy(rows, predicted, instructions)
        sub = accuracy(base_rows, predicted[: len(base_rows)], instructions)
        figures = f"{rate:>9.1f} {rate / baseline_rate:>7.2f} {acc['sentiment']:>9.4f} {acc['topic']:>9.4f}"
        print(f"{name:<28} {figures} {sub['sentiment']:>8.4f} {sub['topic']:>8.4f}")
    precision = "bf16" if device == "cuda" else "fp32"
    sizes = (32, 64, 128, 256, 512, 1024) if device == "cuda" else (16, 32, 64, 128)
    print(f"{precision} batch-size sweep (token budget = batch * 64):")
    texts = [e.text for e in rows] * (8 if device == "cuda" else 1)
    for batch in sizes:
        executor = load(replace(fp32, precision=precision, max_batch=batch, token_budget=batch * 64))
        executor.classify(texts[:batch], instructions)
        if device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        executor.classify(texts, instructions)
        if device == "cuda":
            torch.cuda.synchronize()
        rate = len(texts) / (time.perf_counter() - began)
        print(f"  batch {batch:>5}: {rate:>9.1f} items/s  ({rate / baseline_rate:.2f}x baseline)")


if __name__ == "__main__":
    main()
