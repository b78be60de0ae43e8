"""The demo's model: the `quick` recipe (frozen encoder, heads only), trained once and cached.

Without it a fresh machine's demo shows zero-shot labels, which on the posts call 11% of them
neutral where most are neutral: a newcomer would read the numbers as what the product does. The
first run trains on seeded slices of the shared data (about two minutes on 2 cores) and keeps the
model under FINSENT_CACHE_DIR; later runs adopt it in a second. Its accuracy is measured on a
held-out tenth of those slices (chosen by text hash) that neither training nor its epoch
selection saw, and sentiment toward each entity on SEntFiN's validation headlines (which no
recipe trains on); both are printed with the summary.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from pipeline.settings import Settings

RECIPE = "quick"
HELD_OUT_SHARE = 0.1
# Part of the cache key: bump it when what is cached changes (3: the held-out report gained
# sentiment@entity), or a cache written by older code would be adopted with its old figures.
CACHE_FORMAT = 3
ENTITY_HELD_OUT = 1000  # SEntFiN validation entities scored for the summary (about 10 s)


@dataclass(frozen=True)
class DemoModel:
    version: str
    held_out: dict[str, dict[str, Any]]  # instruction -> accuracy, macro_f1, n
    trained_now: bool
    seconds: float


def demo_model(settings: Settings, engine: Engine) -> DemoModel | None:
    """The cached quick model, trained first if needed, registered and active in `engine`.
    None when the shared data is not there (the demo then runs zero-shot and says so)."""
    from models import instruction_store
    from models.datasets import DataError, fingerprint
    from models.recipes import get_recipe
    from models.registry import ModelRegistry, VersionInfo

    started = time.monotonic()
    recipe = get_recipe(RECIPE)
    instructions = instruction_store.current(engine)
    try:
        examples = recipe.examples(settings.data_dir, instructions)
    except (DataError, OSError):
        return None
    key = f"{settings.encoder}-{fingerprint(examples)[:12]}-c{CACHE_FORMAT}"
    root = settings.cache_dir / "demo-model" / key
    marker = root / "demo-model.json"
    registry = ModelRegistry(root, engine)
    if marker.is_file():
        cached = json.loads(marker.read_text())
        if (Path(cached["path"]) / "manifest.json").is_file():
            registry.adopt(
                VersionInfo(
                    version=cached["version"],
                    status="active",
                    path=cached["path"],
                    encoder=settings.encoder,
                    metrics=cached["held_out"],
                    data_fingerprint=cached["fingerprint"],
                    created_at=datetime.fromisoformat(cached["created_at"]),
                    activated_at=None,
                    decision_reason="the demo's quick model",
                )
            )
            return DemoModel(cached["version"], cached["held_out"], False, time.monotonic() - started)
    version, held_out = _train(settings, registry, recipe, examples, instructions)
    registry.activate(version, "the demo's quick model")
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(
        json.dumps(
            {
                "version": version,
                "path": str(registry.path_of(version)),
                "held_out": held_out,
                "fingerprint": fingerprint(examples),
                "created_at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
    )
    return DemoModel(version, held_out, True, time.monotonic() - started)


def _train(
    settings: Settings, registry: Any, recipe: Any, examples: list[Any], instructions: Any
) -> tuple[str, dict[str, dict[str, Any]]]:
    from models.encoder import load_encoder
    from models.instructions import InstructionSet
    from models.labels import is_holdout, text_hash
    from models.recipes import capped, entity_validation
    from models.registry import compact_metrics
    from models.retrain import entity_holdout_reports, holdout_reports
    from models.training import Trainer

    sides = [is_holdout(text_hash(e.text), HELD_OUT_SHARE) for e in examples]
    held = [e for e, is_held in zip(examples, sides, strict=True) if is_held]
    train = [e for e, is_held in zip(examples, sides, strict=True) if not is_held]
    # The recipe's SEntFiN loaders read only the training side of SEntFiN's fixed split, and that
    # split's hash threshold (0.15) contains this one (0.1): a held-out tenth taken here holds no
    # SEntFiN headline at all. Entity-level sentiment is measured on SEntFiN's own validation side.
    held += capped(entity_validation, ENTITY_HELD_OUT)(settings.data_dir, instructions)
    trained = InstructionSet.of(
        i for i in instructions.instructions if i.name in {e.instruction for e in train}
    )
    print(
        f"training the demo's model once ({RECIPE} recipe: frozen encoder, heads only, "
        f"{len(train)} examples; cached for later runs)"
    )
    tokenizer, encoder = load_encoder(settings.encoder, settings.cache_dir)
    result = Trainer(encoder, tokenizer, trained, recipe.config).fit(train)
    version = registry.register(result, tokenizer, trained, settings.encoder, reason="the demo's quick model")
    model = registry.load(version)
    held_out = compact_metrics(
        {**holdout_reports(model, held, trained), **entity_holdout_reports(model, held, trained)}
    )
    return version, held_out
