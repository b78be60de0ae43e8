"""Versioned models: a folder per version under FINSENT_HOME/models plus a row in `model_versions`.

A version folder is self-contained: the encoder and tokenizer (Hugging Face format, safetensors),
the heads (safetensors) and their label orders, a snapshot of the instruction set it was trained
for, its metrics and the fingerprint of its training data. Exactly one version is `active`;
activating another retires it, and rollback re-activates the one activated before.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors.db.schema import ModelVersion
from connectors.errors import UserInputError
from connectors.processes import pid_alive
from models.instructions import InstructionSet

if TYPE_CHECKING:
    # torch and transformers take seconds to import: `models list`, `compare`, `activate` and
    # `rollback` read the registry without ever loading weights, so the modules that touch
    # tensors are imported where weights are written or read.
    from transformers import PreTrainedTokenizerBase

    from models.executor import ExecutorOptions, InstructionExecutor
    from models.training import TrainResult


class RegistryError(UserInputError, RuntimeError):
    """A registry operation cannot be done; the message says why."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    status: str
    path: str
    encoder: str
    metrics: dict[str, Any]
    data_fingerprint: str
    created_at: datetime
    activated_at: datetime | None
    decision_reason: str


def base_version(encoder: str) -> str:
    """The version string of the untrained encoder (every instruction zero-shot)."""
    return f"base:{encoder}"[:100]


def base_executor(
    encoder: str, options: ExecutorOptions | None = None, cache_dir: Path | None = None
) -> InstructionExecutor:
    from models.encoder import load_encoder
    from models.executor import InstructionExecutor
    from models.network import InstructionModel

    tokenizer, model = load_encoder(encoder, cache_dir)
    return InstructionExecutor(InstructionModel(model, {}), tokenizer, base_version(encoder), options)


def compact_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    compact: dict[str, Any] = {}
    for name, r in metrics.items():
        if "accuracy" not in r:
            continue
        compact[name] = {
            "accuracy": round(r["accuracy"], 4),
            "macro_f1": round(r["macro_f1"], 4),
            "n": r["n"],
        }
        if "calibration" in r:
            compact[name]["ece"] = r["calibration"]["ece_after"]
            compact[name]["ece_uncalibrated"] = r["calibration"]["ece_before"]
    return compact


class ModelRegistry:
    def __init__(self, root: Path, engine: Engine) -> None:
        self.root = root
        self.engine = engine

    # --- writing -------------------------------------------------------------------------------

    def register(
        self,
        result: TrainResult,
        tokenizer: PreTrainedTokenizerBase,
        instructions: InstructionSet,
        encoder: str,
        reason: str = "",
    ) -> str:
        """Save a trained model as a new `candidate` version and return its version string."""
        from safetensors.torch import save_file

        now = datetime.now(UTC)
        version = self._new_version(f"{now:%Y%m%d-%H%M%S}-{result.data_fingerprint[:8]}")
        self.root.mkdir(parents=True, exist_ok=True)
        # The pid in the name lets a later run remove what a killed one left half-written.
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.pid{os.getpid()}.", dir=self.root))
        try:
            model = result.model
            model.encoder.save_pretrained(staging / "encoder")
            tokenizer.save_pretrained(staging / "encoder")
            heads = {k: v.detach().cpu().contiguous() for k, v in model.heads.state_dict().items()}
            save_file(heads, str(staging / "heads.safetensors"))
            (staging / "heads.json").write_text(json.dumps(model.head_labels, indent=2))
            (staging / "calibration.json").write_text(json.dumps(model.temperatures, indent=2))
            (staging / "instructions.yaml").write_text(
                yaml.safe_dump(
                    [i.to_dict() for i in instructions.instructions], sort_keys=False, allow_unicode=True
                )
            )
            (staging / "metrics.json").write_text(json.dumps(result.summary(), indent=2))
            manifest = {
                "version": version,
                "base_encoder": encoder,
                "data_fingerprint": result.data_fingerprint,
                "created_at": now.isoformat(),
                "mode": result.config.mode,
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
            target = self.root / version
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with Session(self.engine) as session, session.begin():
            session.add(
                ModelVersion(
                    version=version,
                    status="candidate",
                    path=str(target),
                    encoder=encoder,
                    metrics=compact_metrics(result.metrics),
                    data_fingerprint=result.data_fingerprint,
                    decision_reason=reason,
                )
            )
        return version

    def _new_version(self, stem: str) -> str:
        """`stem`, or `stem-2`, `stem-3`... when the same data was registered within the same second."""
        with Session(self.engine) as session:
            taken = set(
                session.scalars(select(ModelVersion.version).where(ModelVersion.version.like(f"{stem}%")))
            )
        version, n = stem, 1
        while version in taken or (self.root / version).exists():
            n += 1
            version = f"{stem}-{n}"
        return version

    def activate(self, version: str, reason: str = "") -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(ModelVersion, version)
            if row is None:
                raise RegistryError(f"no model version {version!r}")
            _activate(session, row, reason)

    def adopt(self, info: VersionInfo) -> None:
        """Register another database's version (same folder) here and make it active: the demo's
        fresh database uses the model the operator trained."""
        with Session(self.engine) as session, session.begin():
            if session.get(ModelVersion, info.version) is None:
                session.add(
                    ModelVersion(
                        version=info.version,
                        status="candidate",
                        path=info.path,
                        encoder=info.encoder,
                        metrics=info.metrics,
                        data_fingerprint=info.data_fingerprint,
                        decision_reason=f"adopted: {info.decision_reason}",
                    )
                )
        self.activate(info.version)

    def active(self) -> VersionInfo | None:
        version = self.active_version()
        return next((v for v in self.versions() if v.version == version), None) if version else None

    def record_decision(self, version: str, status: str, reason: str, metrics: dict[str, Any]) -> None:
        """Store a gate's decision on the version's row; `active` also activates it."""
        # One transaction: a process killed here leaves either no decision or all of it.
        with Session(self.engine) as session, session.begin():
            row = session.get(ModelVersion, version)
            if row is None:
                raise RegistryError(f"no model version {version!r}")
            row.metrics = metrics
            row.decision_reason = reason
            if status == "active":
                _activate(session, row, reason)
            else:
                row.status = status

    def clear_interrupted(self, reason_of_candidates: str) -> list[str]:
        """Reject the candidates a killed retrain registered but never decided on, and remove the
        staging folders of registrations whose process died. Call it holding the retrain lock."""
        for staging in self.root.glob(".*.pid*.*"):
            pid = staging.name.rsplit(".pid", 1)[1].split(".", 1)[0]
            if staging.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(staging, ignore_errors=True)
        with Session(self.engine) as session, session.begin():
            stale = list(
                session.scalars(
                    select(ModelVersion).where(
                        ModelVersion.status == "candidate",
                        ModelVersion.decision_reason == reason_of_candidates,
                    )
                )
            )
            for row in stale:
                row.status = "rejected"
                row.decision_reason = "interrupted: the retrain that registered it stopped before deciding"
        return [row.version for row in stale]

    def rollback(self) -> str:
        """Re-activate the version that was active before the current one."""
        with Session(self.engine) as session:
            current = self.active_version()
            previous = session.scalars(
                select(ModelVersion)
                .where(ModelVersion.activated_at.is_not(None), ModelVersion.version != (current or ""))
                .where(ModelVersion.status == "retired")
                .order_by(ModelVersion.activated_at.desc())
            ).first()
            if previous is None:
                raise RegistryError("nothing to roll back to: no earlier active version")
            target = previous.version
        self.activate(target, reason=f"rollback from {current}")
        return target

    # --- reading -------------------------------------------------------------------------------

    def active_version(self) -> str | None:
        with Session(self.engine) as session:
            return session.scalars(
                select(ModelVersion.version).where(ModelVersion.status == "active")
            ).first()

    def versions(self) -> list[VersionInfo]:
        with Session(self.engine) as session:
            rows = session.scalars(select(ModelVersion).order_by(ModelVersion.created_at)).all()
            return [
                VersionInfo(
                    r.version,
                    r.status,
                    r.path,
                    r.encoder,
                    dict(r.metrics),
                    r.data_fingerprint,
                    r.created_at,
                    r.activated_at,
                    r.decision_reason,
                )
                for r in rows
            ]

    def path_of(self, version: str) -> Path:
        with Session(self.engine) as session:
            row = session.get(ModelVersion, version)
            if row is None:
                raise RegistryError(f"no model version {version!r}")
            return Path(row.path)

    def validation_metrics(self, version: str) -> dict[str, dict[str, Any]]:
        """Per head: accuracy, macro-F1, n and (when calibrated) ECE on the version's validation
        split, from its folder's metrics.json."""
        summary = json.loads((self.path_of(version) / "metrics.json").read_text())
        return compact_metrics(summary.get("validation", {}))

    def load(self, version: str, options: ExecutorOptions | None = None) -> InstructionExecutor:
        return load_folder(self.path_of(version), version, options)


def load_folder(folder: Path, version: str, options: ExecutorOptions | None = None) -> InstructionExecutor:
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from models.executor import InstructionExecutor
    from models.network import InstructionModel

    tokenizer = AutoTokenizer.from_pretrained(folder / "encoder")
    encoder = AutoModel.from_pretrained(folder / "encoder")
    head_labels = json.loads((folder / "heads.json").read_text())
    model = InstructionModel(encoder, head_labels)
    model.heads.load_state_dict(load_file(str(folder / "heads.safetensors")))
    calibration = folder / "calibration.json"  # absent in versions saved before calibration: raw
    if calibration.is_file():
        model.temperatures = {str(k): float(v) for k, v in json.loads(calibration.read_text()).items()}
    return InstructionExecutor(model, tokenizer, version, options)


def snapshot_instructions(folder: Path) -> InstructionSet:
    from models.instructions import load_yaml

    return load_yaml(folder / "instructions.yaml")


def _activate(session: Session, row: ModelVersion, reason: str) -> None:
    if not (Path(row.path) / "manifest.json").is_file():
        raise RegistryError(f"model version {row.version!r}: folder {row.path} is missing")
    for current in session.scalars(select(ModelVersion).where(ModelVersion.status == "active")):
        if current.version != row.version:
            current.status = "retired"
    row.status = "active"
    row.activated_at = datetime.now(UTC)
    if reason:
        row.decision_reason = reason
