"""`finsent instructions | train | models | classify | evaluate`: the model side of the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from models.instructions import ARTICLE, SCOPES
from pipeline.cli.common import open_engine
from pipeline.settings import Settings

if TYPE_CHECKING:
    from models.classifier import Output

CHUNK = 1024  # texts per classify() call in the batch commands: bounded memory, steady progress


# --- instructions ----------------------------------------------------------------------------


def cmd_instructions(args: argparse.Namespace, settings: Settings) -> int:
    from models import instruction_store
    from models.instructions import Instruction, load_yaml

    engine = open_engine(settings)
    if args.action == "list":
        for instruction in instruction_store.current(engine).instructions:
            state = "active" if instruction.active else "disabled"
            count = f"{len(instruction.labels):>3} labels"
            print(f"{instruction.name:<20} {state:<9} {instruction.scope:<8} {count}  {instruction.text}")
        return 0
    if args.action == "teach":
        return _teach(args, settings, engine)
    if args.action == "decisions":
        return _decisions(args, engine)
    if args.action in {"disable", "enable"}:
        changed = instruction_store.set_active(engine, args.name, args.action == "enable")
        print(f"instruction {changed.name} {'enabled' if changed.active else 'disabled'}")
        return 0
    if args.file:
        added = list(load_yaml(Path(args.file)).instructions)
    else:
        if not (args.name and args.text and args.label):
            raise SystemExit("instructions add: give --file, or --name, --text and at least two --label")
        labels = {}
        for spec in args.label:
            label, _, description = spec.partition(":")
            labels[label.strip()] = description.strip()
        added = [
            Instruction.from_dict(
                {
                    "name": args.name,
                    "text": args.text,
                    "labels": labels,
                    "active": not args.inactive,
                    "scope": args.scope,
                }
            )
        ]
    for instruction in added:
        instruction_store.upsert(engine, instruction)
        print(f"instruction {instruction.name} saved ({len(instruction.labels)} labels)")
    return 0


def _teach(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    """Validate the file, check the evidence, and only then store labels and decide: a refusal
    (unknown instruction, too few labels) leaves the database as it was."""
    from connectors.db.label_store import read_labels
    from models import instruction_store
    from models.labels import read_label_file, store_labels, validate
    from models.teach import check_evidence, latest_per_text, teach

    instructions = instruction_store.current(engine)
    instruction = instruction_store.get(instructions, args.name)
    records = read_label_file(Path(args.labels)) if args.labels else []
    provenance = f"teach:{Path(args.labels).name}" if args.labels else ""
    rows, rejected = validate(records, instructions, engine, provenance, args.annotator or "")
    for line, reason in rejected:
        print(f"{args.labels}:{line}: rejected: {reason}", file=sys.stderr)
    stored = read_labels(engine, instruction.name)
    check_evidence(
        instruction, latest_per_text(stored + [r for r in rows if r.instruction == instruction.name])
    )
    if records:
        report = store_labels(engine, records, instructions, provenance, args.annotator or "")
        print(json.dumps({"labels": report.summary()}), file=sys.stderr)
    executor = _executor(settings, engine, None)
    outcome = teach(engine, executor, instruction, read_labels(engine, instruction.name))
    print(json.dumps(outcome.summary(), ensure_ascii=False))
    return 0


def _decisions(args: argparse.Namespace, engine: Engine) -> int:
    from models import head_store

    for row in head_store.history(engine, args.name):
        print(
            f"{row.id:>5} {row.created_at:%Y-%m-%d %H:%M} {row.instruction:<20} {row.status:<8} "
            f"{row.label_count:>5} labels  {row.model_version}  {row.decision_reason}"
        )
    return 0


# --- training ----------------------------------------------------------------------------------


def _training_examples(
    args: argparse.Namespace, settings: Settings, instructions: Any
) -> tuple[list[Any], Any, str | None]:
    from models.datasets import DataError, load_examples, parse_label_map
    from models.recipes import get_recipe
    from models.train_config import TrainConfig

    if args.recipe:
        recipe = get_recipe(args.recipe)
        if recipe.needs_teacher and not args.teacher:
            raise DataError(f"recipe {recipe.name!r} distils a teacher: give --teacher VERSION")
        return recipe.examples(settings.data_dir, instructions), recipe.config, recipe.encoder
    if not args.data:
        raise DataError("give --recipe NAME, or --data FILE --instruction NAME (repeatable)")
    if len(args.instruction or []) != len(args.data):
        raise DataError("give one --instruction per --data file, in the same order")
    maps = args.label_map or []
    if len(maps) not in {0, len(args.data)}:
        raise DataError("give no --label-map, or one per --data file ('' for none)")
    examples = []
    for index, (path, name) in enumerate(zip(args.data, args.instruction, strict=True)):
        mapping = parse_label_map(maps[index]) if maps else {}
        examples.extend(
            load_examples(Path(path), instructions.get(name), args.text_column, args.label_column, mapping)
        )
    return examples, TrainConfig(), None


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from models import instruction_store
    from models.instructions import InstructionSet
    from models.registry import ModelRegistry

    engine = open_engine(settings)
    registry = ModelRegistry(settings.models_dir, engine)
    instructions = instruction_store.current(engine)
    teacher = _load_teacher(args, registry) if args.teacher else None
    if teacher is not None:
        # The student answers the teacher's questions with the teacher's labels: its instruction
        # snapshot, not whatever the instructions table says today.
        instructions = teacher[1]
    examples, config, recipe_encoder = _training_examples(args, settings, instructions)
    # Imported once the arguments and the data have been checked: torch takes seconds to import,
    # and a mistyped recipe or an unmapped label should be answered at once.
    from models.checkpoints import CheckpointStore
    from models.encoder import configure_cpu_threads, load_encoder
    from models.training import Trainer

    overrides = {
        key: value
        for key, value in {
            "mode": args.mode,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "seed": args.seed,
            "freeze_layers": args.freeze_layers,
            "layer_lr_decay": args.layer_lr_decay,
            "time_budget_s": args.time_budget_min * 60 if args.time_budget_min else None,
        }.items()
        if value is not None
    }
    device = args.device or ("cuda" if settings.inference_device == "auto" and _cuda() else "cpu")
    checkpoints = Path(args.checkpoint_dir) if args.checkpoint_dir else _checkpoint_dir(args, settings)
    config = replace(config, device=device, checkpoint_dir=str(checkpoints), **overrides)
    store = CheckpointStore(checkpoints)
    if args.fresh:
        store.clear()
    elif config.mode == "full" and store.path.is_file():
        print(f"resuming from the checkpoint in {checkpoints} (--fresh starts over)", flush=True)
    trained = InstructionSet.of(
        i for i in instructions.instructions if i.name in {e.instruction for e in examples}
    )
    unlabelled: list[str] = []
    if teacher is not None:
        trained = teacher[1]
        unlabelled = _unlabelled_texts(args, engine)
    configure_cpu_threads(settings.inference_cpu_threads)
    encoder = args.encoder or recipe_encoder or settings.encoder
    tokenizer, model = load_encoder(encoder, settings.cache_dir)
    print(
        f"training {', '.join(trained.names())} on {len(examples)} rows"
        + (f" and {len(unlabelled)} unlabelled texts, distilling {args.teacher}" if teacher else "")
        + f": mode={config.mode} "
        f"epochs={config.heads_epochs if config.mode == 'heads' else config.epochs:g} device={config.device}",
        flush=True,
    )
    started = time.monotonic()
    result = Trainer(model, tokenizer, trained, config).fit(
        examples, teacher=teacher[0] if teacher else None, unlabelled=unlabelled
    )
    from models.evaluation import format_report

    for name, report in result.metrics.items():
        print(format_report(f"validation {name}", report))
    if result.distillation is not None:
        for head, figures in result.distillation.get("teacher_validation", {}).items():
            print(
                f"teacher {head}: accuracy {figures['accuracy']:.4f} macro-F1 {figures['macro_f1']:.4f}; "
                f"student agrees on {result.distillation['agreement'].get(head, 0):.4f}"
            )
    reason = f"trained with {args.recipe or 'files'}" + (
        f", distilled from {args.teacher}" if teacher else ""
    )
    version = registry.register(result, tokenizer, trained, encoder, reason=reason)
    store.clear()  # registered: the checkpoint has served its purpose
    if args.no_activate:
        print(f"registered {version} (candidate, not activated)")
    else:
        registry.activate(version, reason="activated by finsent train")
        print(f"registered and activated {version}")
    print(f"training took {time.monotonic() - started:.0f} s")
    return 0


def _checkpoint_dir(args: argparse.Namespace, settings: Settings) -> Path:
    """One folder per recipe (and teacher): two different runs never resume each other's state."""
    name = args.recipe or "files"
    if args.teacher:
        name += f"-from-{args.teacher}"
    return settings.home / "checkpoints" / f"train-{name}"


def _load_teacher(args: argparse.Namespace, registry: Any) -> tuple[Any, Any]:
    """(Teacher, its instruction snapshot) of a registered version."""
    import torch

    from models.distillation import Teacher
    from models.executor import ExecutorOptions
    from models.registry import snapshot_instructions

    folder = registry.path_of(args.teacher)
    summary = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    max_length = int(summary.get("config", {}).get("max_length", 128))
    executor = registry.load(args.teacher, ExecutorOptions(device=args.device or "auto"))
    teacher = Teacher(
        executor.model,
        executor.tokenizer,
        max_length=max_length,
        device=torch.device(executor.device),
        progress=True,
    )
    return teacher, snapshot_instructions(folder)


def _unlabelled_texts(args: argparse.Namespace, engine: Engine) -> list[str]:
    from connectors.db.texts import recent_article_texts
    from models.datasets import read_texts

    texts = [text for path in args.texts or [] for text in read_texts(Path(path))]
    return texts + recent_article_texts(engine, args.stored_texts)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# --- registry ----------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from models.registry import ModelRegistry

    registry = ModelRegistry(settings.models_dir, open_engine(settings))
    if args.action == "list":
        for info in registry.versions():
            figures = " ".join(
                f"{name}: acc={m.get('accuracy', 0):.3f} f1={m.get('macro_f1', 0):.3f}"
                for name, m in info.metrics.items()
                if isinstance(m, dict)
            )
            print(f"{info.version:<32} {info.status:<9} {figures}  {info.decision_reason}")
        return 0
    if args.action == "activate":
        registry.activate(args.version, reason="activated by operator")
        print(f"activated {args.version}")
        return 0
    if args.action == "compare":
        return _compare(registry, args.first, args.second, args.json)
    print(f"rolled back to {registry.rollback()}")
    return 0


def _compare(registry: Any, first: str, second: str, as_json: bool) -> int:
    """Two versions' validation figures side by side. Each version was validated on its own
    split of its own training data: the figures compare like with like only for the same data
    (the fingerprints say whether it was)."""
    figures = {v: registry.validation_metrics(v) for v in (first, second)}
    fingerprints = {info.version: info.data_fingerprint for info in registry.versions()}
    if as_json:
        print(
            json.dumps({"validation": figures, "data_fingerprint": {v: fingerprints.get(v) for v in figures}})
        )
        return 0
    a, b = figures[first], figures[second]
    print(f"{'head':<20} {'metric':<9} {first[:24]:>24} {second[:24]:>24} {'change':>8}")
    for head in sorted(set(a) | set(b)):
        for metric in ("accuracy", "macro_f1", "ece", "n"):
            left, right = a.get(head, {}).get(metric), b.get(head, {}).get(metric)
            if left is None and right is None:
                continue
            change = (
                f"{right - left:+.4f}" if left is not None and right is not None and metric != "n" else ""
            )
            print(f"{head:<20} {metric:<9} {_figure(left):>24} {_figure(right):>24} {change:>8}")
    same = fingerprints.get(first) == fingerprints.get(second)
    print(
        "same training data: validation splits are comparable"
        if same
        else "different training data: each version's validation split is its own"
    )
    return 0


def _figure(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# --- batch classification and evaluation ------------------------------------------------------


def _executor(settings: Settings, engine: Engine, version: str | None) -> Any:
    from models.registry import ModelRegistry, base_executor
    from pipeline.service.runtime import executor_options

    registry = ModelRegistry(settings.models_dir, engine)
    options = executor_options(settings)
    version = version or registry.active_version()
    from models import head_store

    if version is None:
        print("no active model: instructions run zero-shot on the base encoder", file=sys.stderr)
        executor = base_executor(settings.encoder, options, settings.cache_dir)
    else:
        executor = registry.load(version, options)
    head_store.install_active(engine, executor)  # taught heads answer here as in the worker
    return executor


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.rules import parse_duration
    from models import instruction_store
    from models.classifier import StandInClassifier
    from pipeline.jobs.backfill import BackfillReport, run_backfill
    from pipeline.service.runtime import entity_recogniser

    engine = open_engine(settings)
    if settings.classifier == "standin" and not args.model:
        classifier: Any = StandInClassifier()
    else:
        classifier = _executor(settings, engine, args.model)
    interactive = sys.stderr.isatty()

    def progress(report: BackfillReport) -> None:
        done, due = report.classified + report.failed, max(report.due_at_start, 1)
        rate = report.classified / report.seconds if report.seconds else 0.0
        bar = "#" * int(30 * min(done / due, 1.0))
        line = f"backfill {report.version}: [{bar:<30}] {done}/{report.due_at_start} {rate:.0f} items/s"
        # A terminal gets one line redrawn; a log file a line per batch it can be grepped in.
        print(
            ("\r" + line) if interactive else line,
            end="" if interactive else "\n",
            file=sys.stderr,
            flush=True,
        )

    report = run_backfill(
        engine,
        classifier,
        instruction_store.current(engine),
        entity_recogniser(settings),
        parse_duration(args.since),
        batch_size=args.batch,
        items_per_s=args.rate,
        progress=progress,
    )
    if interactive:
        print(file=sys.stderr)
    print(json.dumps(report.as_dict()))
    return 0 if report.failed == 0 else 1


@dataclass(frozen=True)
class ClassifyInput:
    id: Any
    text: str
    entities: list[str] | None  # given: judged exactly as written; None: recognised


def read_inputs(path: Path) -> Iterator[ClassifyInput]:
    """JSONL ({"id", "text", optional "entities": [...]}) or CSV (a `text` column; ids are row
    numbers). A bad entity list stops the run with its line, before anything is classified."""
    from connectors.entities import EntityListError, check_entity_list
    from models.datasets import DataError, read_records

    is_jsonl = path.suffix.lower() in {".jsonl", ".ndjson", ".json"}
    for number, record in enumerate(read_records(path)):
        where = f"{path}:{number + 1}" if is_jsonl else f"{path}: record {number}"
        if "text" not in record or not isinstance(record["text"], str):
            raise DataError(f"{where}: no text field")
        entities = None
        if is_jsonl and record.get("entities") is not None:
            try:
                entities = check_entity_list(record["entities"])
            except EntityListError as exc:
                raise DataError(f"{where}: {exc}") from None
        yield ClassifyInput(record.get("id", number) if is_jsonl else number, record["text"], entities)


def _output_json(out: Output) -> dict[str, Any]:
    line: dict[str, Any] = {"label": out.label, "score": out.score, "distribution": out.distribution}
    if out.zero_shot:
        line["zero_shot"] = True
    return line


def cmd_classify(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.entities import entities_of
    from models import instruction_store
    from pipeline.service.runtime import entity_recogniser

    engine = open_engine(settings)
    executor = _executor(settings, engine, args.model)
    instructions = instruction_store.current(engine)
    inputs = list(read_inputs(Path(args.input)))
    recogniser = entity_recogniser(settings)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with output.open("w", encoding="utf-8") as handle:
        for start in range(0, len(inputs), CHUNK):
            chunk = inputs[start : start + CHUNK]
            entities = [entities_of(recogniser, i.text, (), i.entities) for i in chunk]
            answers = executor.classify_items(
                [i.text for i in chunk], instructions, [[e.text for e in found] for found in entities]
            )
            for item, found, answer in zip(chunk, entities, answers, strict=True):
                line: dict[str, Any] = {"id": item.id}
                line.update({name: _output_json(out) for name, out in answer.article.items()})
                line["entities"] = {
                    entity.text: {
                        "kind": entity.kind,
                        "ticker": entity.ticker,
                        "found": entity.found,
                        **{
                            name: _output_json(out)
                            for name, out in (
                                answer.entities[entity.text].outputs if entity.text in answer.entities else {}
                            ).items()
                        },
                    }
                    for entity in found
                }
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    seconds = time.monotonic() - started
    print(
        f"classified {len(inputs)} texts with {executor.version} in {seconds:.1f} s "
        f"({len(inputs) / max(seconds, 1e-9):.0f}/s) → {output}",
        file=sys.stderr,
    )
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from models import instruction_store
    from models.datasets import load_examples, parse_label_map
    from models.evaluation import classification_report, format_report
    from models.instructions import InstructionSet

    engine = open_engine(settings)
    instruction = instruction_store.current(engine).get(args.instruction)
    examples = load_examples(
        Path(args.data), instruction, args.text_column, args.label_column, parse_label_map(args.label_map)
    )
    executor = _executor(settings, engine, args.model)
    only = InstructionSet.of([replace(instruction, active=True, scope=ARTICLE)])  # labels are per text
    predicted: list[str] = []
    for start in range(0, len(examples), CHUNK):
        chunk = examples[start : start + CHUNK]
        predicted.extend(a[instruction.name].label for a in executor.classify([e.text for e in chunk], only))
    report = classification_report([e.label for e in examples], predicted, instruction.label_names)
    report["model_version"] = executor.version
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"model {executor.version}")
        print(format_report(instruction.name, report))
    return 0


# --- labels and retraining ----------------------------------------------------------------------


def cmd_labels(args: argparse.Namespace, settings: Settings) -> int:
    from models import instruction_store
    from models.labels import annotation_queue, import_file, write_jsonl

    engine = open_engine(settings)
    if args.action == "import":
        report = import_file(engine, Path(args.file), instruction_store.current(engine), args.annotator or "")
        for line, reason in report.rejected:
            print(f"{args.file}:{line}: rejected: {reason}", file=sys.stderr)
        print(json.dumps(report.summary()))
        return 0 if report.stored or not report.rejected else 1
    instruction = instruction_store.get(instruction_store.current(engine), args.instruction)
    executor = _executor(settings, engine, args.model)
    entries = annotation_queue(engine, executor, instruction, args.n, args.pool)
    if args.output:
        write_jsonl(entries, Path(args.output))
        print(f"{len(entries)} items to label → {args.output}", file=sys.stderr)
    else:
        for entry in entries:
            print(json.dumps(entry, ensure_ascii=False))
    return 0


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.jobs.retrain import run_retrain

    outcome = run_retrain(settings, open_engine(settings))
    print(
        json.dumps(
            {
                "status": outcome.status,
                "version": outcome.version,
                "compared_with": outcome.active_version,
                "reason": outcome.reason,
                "heads": outcome.heads,
                "holdout": {"candidate": outcome.candidate, "active": outcome.active},
                "seconds": round(outcome.seconds, 1),
            }
        )
    )
    return 0


def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.jobs.scheduler import run_forever

    run_forever(settings, open_engine(settings))
    return 0


# --- parser ------------------------------------------------------------------------------------


def add_commands(sub: Any, run: Any) -> None:
    """Register the model-side subcommands; `run` wraps a handler with settings and logging."""
    instructions = sub.add_parser("instructions", help="the instruction set (data, not code)")
    actions = instructions.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every instruction and its state").set_defaults(
        func=run(cmd_instructions)
    )
    add = actions.add_parser("add", help="add or replace an instruction")
    add.add_argument("--file", help="YAML list of instructions (name, text, labels, active, scope)")
    add.add_argument("--name")
    add.add_argument("--text", help="the natural-language instruction")
    add.add_argument("--label", action="append", help="LABEL:one-line description (repeat per label)")
    add.add_argument("--inactive", action="store_true", help="store it disabled")
    add.add_argument(
        "--scope",
        choices=SCOPES,
        default=ARTICLE,
        help="article: one answer per item; entity: one per entity named; both (default: article)",
    )
    add.set_defaults(func=run(cmd_instructions))
    teach = actions.add_parser(
        "teach",
        help="fit this instruction's head from its labels (plus FILE); promote it only if it is "
        "measurably better than what answers it now; no other instruction changes",
    )
    teach.add_argument("name")
    teach.add_argument(
        "--labels", help="CSV/JSONL labels to store first (text or article_id, instruction, label)"
    )
    teach.add_argument("--annotator", help="annotator for rows that name none")
    teach.set_defaults(func=run(cmd_instructions))
    decisions = actions.add_parser("decisions", help="every taught head and the decision about it")
    decisions.add_argument("name", nargs="?")
    decisions.set_defaults(func=run(cmd_instructions))
    for action in ("disable", "enable"):
        parser = actions.add_parser(action, help=f"{action} an instruction")
        parser.add_argument("name")
        parser.set_defaults(func=run(cmd_instructions))

    train = sub.add_parser("train", help="train instruction heads (multi-task) and register the model")
    train.add_argument(
        "--recipe",
        help="default (CPU, ≤30 min), teacher (mpnet, ≤2 h CPU), distil (with --teacher), accurate (GPU)",
    )
    train.add_argument("--data", action="append", help="CSV or JSONL file (repeatable)")
    train.add_argument("--instruction", action="append", help="instruction each --data file trains")
    train.add_argument(
        "--label-map", action="append", help="per --data file: 'bearish=negative,...' or a file"
    )
    train.add_argument("--text-column", default="text")
    train.add_argument("--label-column", default="label")
    train.add_argument("--mode", choices=["heads", "full"])
    train.add_argument("--epochs", type=float)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--max-length", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--freeze-layers", type=int, help="full mode: bottom encoder layers kept frozen")
    train.add_argument(
        "--layer-lr-decay", type=float, help="full mode: each layer's rate is this factor of the one above"
    )
    train.add_argument("--time-budget-min", type=float, help="stop training after this many minutes")
    train.add_argument("--device", help="cpu, cuda (default: GPU when visible)")
    train.add_argument("--encoder", help="base encoder (default: FINSENT_ENCODER)")
    train.add_argument("--no-activate", action="store_true", help="register as a candidate only")
    train.add_argument(
        "--teacher", help="a registered version to distil: its soft labels teach this model its heads"
    )
    train.add_argument(
        "--texts",
        action="append",
        help="with --teacher: unlabelled texts (.txt lines, CSV/JSONL text or title/body)",
    )
    train.add_argument(
        "--stored-texts",
        type=int,
        default=20000,
        help="with --teacher: also this many stored article texts, newest first (default 20000)",
    )
    train.add_argument(
        "--checkpoint-dir",
        help="full mode: checkpoint folder (default FINSENT_HOME/checkpoints/train-RECIPE)",
    )
    train.add_argument("--fresh", action="store_true", help="discard a checkpoint instead of resuming it")
    train.set_defaults(func=run(cmd_train))

    models = sub.add_parser("models", help="the model registry")
    model_actions = models.add_subparsers(dest="action", required=True)
    model_actions.add_parser("list").set_defaults(func=run(cmd_models))
    activate = model_actions.add_parser("activate")
    activate.add_argument("version")
    activate.set_defaults(func=run(cmd_models))
    model_actions.add_parser("rollback", help="re-activate the previous version").set_defaults(
        func=run(cmd_models)
    )
    compare = model_actions.add_parser("compare", help="two versions' validation metrics side by side")
    compare.add_argument("first")
    compare.add_argument("second")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=run(cmd_models))

    labels = sub.add_parser("labels", help="human labels: import, and the annotation queue")
    label_actions = labels.add_subparsers(dest="action", required=True)
    imp = label_actions.add_parser(
        "import", help="CSV/JSONL: text or article_id, instruction, label[, annotator]"
    )
    imp.add_argument("file")
    imp.add_argument("--annotator", help="annotator for rows that name none")
    imp.set_defaults(func=run(cmd_labels))
    queue = label_actions.add_parser(
        "queue",
        help="stored items whose labels would teach the instruction most: labels it has few of "
        "first, then the ones it is least sure about, kept diverse",
    )
    queue.add_argument("--instruction", required=True)
    queue.add_argument("--n", type=int, default=50)
    queue.add_argument("--pool", type=int, default=2000, help="recent articles to choose from")
    queue.add_argument("--output", help="JSONL file (default: standard output)")
    queue.add_argument("--model", help="model version that answers now (default: the active one)")
    queue.set_defaults(func=run(cmd_labels))

    sub.add_parser(
        "scheduler", help="run scheduled jobs: retraining (cron and on new labels), housekeeping"
    ).set_defaults(func=run(cmd_scheduler))
    sub.add_parser(
        "retrain",
        help="run the retrain job now: train a candidate, promote it only if it beats the active model",
    ).set_defaults(func=run(cmd_retrain))

    backfill = sub.add_parser(
        "backfill", help="re-label recent articles that another model version answered (resumable)"
    )
    backfill.add_argument("--since", default="7d", help="how far back by publication time (default 7d)")
    backfill.add_argument("--model", help="model version to answer with (default: the active one)")
    backfill.add_argument("--batch", type=int, default=32, help="articles per forward pass and write")
    backfill.add_argument("--rate", type=float, default=0.0, help="items per second at most (0: unthrottled)")
    backfill.set_defaults(func=run(cmd_backfill))

    classify = sub.add_parser("classify", help="run every active instruction over a file")
    classify.add_argument("--input", required=True, help="JSONL {id, text} or CSV with a text column")
    classify.add_argument("--output", required=True, help="JSONL, one line per input, in input order")
    classify.add_argument("--model", help="model version (default: the active one)")
    classify.set_defaults(func=run(cmd_classify))

    evaluate = sub.add_parser("evaluate", help="accuracy, macro-F1 and per-class figures on a labelled file")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--instruction", required=True)
    evaluate.add_argument("--label-map")
    evaluate.add_argument("--text-column", default="text")
    evaluate.add_argument("--label-column", default="label")
    evaluate.add_argument("--model", help="model version (default: the active one)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=run(cmd_evaluate))
