"""The runtime half of the instruction set: rows of the `instructions` table.

Rows override the shipped YAML by name, so an operator can add an instruction, change a built-in
one's text or labels, or disable it, without a code change or a restart.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors.db.schema import Instruction as InstructionRow
from models.instructions import Instruction, InstructionError, InstructionSet, builtin, merge


def current(engine: Engine) -> InstructionSet:
    with Session(engine) as session:
        rows = session.scalars(select(InstructionRow)).all()
        overrides = [
            Instruction(
                name=row.name, text=row.text, labels=dict(row.labels), active=row.active, scope=row.scope
            )
            for row in rows
        ]
    return merge(builtin(), overrides)


def upsert(engine: Engine, instruction: Instruction) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(InstructionRow, instruction.name)
        if row is None:
            session.add(
                InstructionRow(
                    name=instruction.name,
                    text=instruction.text,
                    labels=dict(instruction.labels),
                    active=instruction.active,
                    scope=instruction.scope,
                )
            )
        else:
            row.text = instruction.text
            row.labels = dict(instruction.labels)
            row.active = instruction.active
            row.scope = instruction.scope


def get(instructions: InstructionSet, name: str) -> Instruction:
    """The instruction called `name`, or an error an operator can act on."""
    try:
        return instructions.get(name)
    except KeyError:
        raise InstructionError(f"no instruction named {name!r} (see `finsent instructions list`)") from None


def set_active(engine: Engine, name: str, active: bool) -> Instruction:
    instruction = get(current(engine), name)
    changed = replace(instruction, active=active)
    upsert(engine, changed)
    return changed
