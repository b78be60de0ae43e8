"""The layout keeps its shape: every import of a project module runs in the allowed direction.

Read from the source with `ast` (every `import` statement, also those inside functions and under
`TYPE_CHECKING`, since a deferred import couples the layers just the same). A new part of
`pipeline/` that the table does not name is itself a violation, so that adding a room is a
decision, not an accident.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from pipeline.settings import REPO_ROOT

PACKAGES = ("connectors", "models", "alerts", "pipeline")
BASE = {"connectors", "models", "alerts"}  # every part of `pipeline` may use the three libraries
SETTINGS, TELEMETRY, SERVICE, JOBS, WEB, DEMO, DEVSTACK, CLI = (
    f"pipeline.{name}"
    for name in ("settings", "telemetry", "service", "jobs", "web", "demo", "devstack", "cli")
)

# part -> the parts it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "connectors": set(),
    "models": {"connectors"},
    "alerts": {"connectors"},
    "pipeline": set(),  # the package's own __init__
    SETTINGS: set(),
    TELEMETRY: BASE | {SETTINGS},
    DEVSTACK: BASE | {SETTINGS},
    SERVICE: BASE | {SETTINGS, TELEMETRY},
    JOBS: BASE | {SETTINGS, TELEMETRY, SERVICE},
    WEB: BASE | {SETTINGS, TELEMETRY},
    DEMO: BASE | {SETTINGS, TELEMETRY, SERVICE, DEVSTACK},
    CLI: BASE | {SETTINGS, TELEMETRY, SERVICE, JOBS, WEB, DEMO, DEVSTACK},
}


def part_of(module: str) -> str:
    """`pipeline.service.worker` -> `pipeline.service`; `models.executor` -> `models`."""
    pieces = module.split(".")
    if pieces[0] == "pipeline" and len(pieces) > 1:
        return ".".join(pieces[:2])
    return pieces[0]


def module_name(root: Path, path: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import of a project module in one file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - (node.level - 1)])
                target = ".".join(piece for piece in (base, node.module) if piece)
            else:
                target = node.module or ""
            # `from pipeline import metrics` imports the submodule `pipeline.metrics`
            if target in PACKAGES:
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def violations(root: Path) -> list[str]:
    """Every import against the table, as `file:line: part imports other`."""
    problems: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(root, path)
            part = part_of(module)
            where = path.relative_to(root)
            if part not in ALLOWED:
                problems.append(f"{where}: {part} is not in the layering table (tests/test_layering.py)")
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, target in imported_modules(tree, module, path.name == "__init__.py"):
                other = part_of(target)
                if other != part and other not in ALLOWED[part]:
                    problems.append(f"{where}:{line}: {part} imports {target}")
    return problems


def test_the_project_imports_only_in_the_allowed_directions() -> None:
    assert violations(REPO_ROOT) == []


def _copy_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_a_wrong_import_is_caught(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    assert violations(root) == []
    # The service reaching into the CLI, deferred inside a function (still a coupling).
    _append(
        root / "pipeline/service/worker.py",
        "\n\ndef _shortcut():\n    from pipeline.cli.common import open_engine\n\n    return open_engine\n",
    )
    # A library importing upwards, and a library importing its peer.
    _append(root / "connectors/fetch.py", "\nfrom models import encoder  # noqa\n")
    _append(root / "alerts/scan.py", "\nimport models.executor  # noqa\n")
    # The web layer importing the service by a bare `from pipeline`, and by a relative import.
    _append(root / "pipeline/web/dashboard.py", "\nfrom pipeline import service  # noqa\n")
    _append(root / "pipeline/web/report.py", "\nfrom ..service import batch  # noqa\n")
    problems = violations(root)
    assert len(problems) == 5, problems
    assert any(
        p.startswith("pipeline/service/worker.py:") and "imports pipeline.cli.common" in p for p in problems
    )
    assert any(p.startswith("connectors/fetch.py:") and "connectors imports models" in p for p in problems)
    assert any(p.startswith("alerts/scan.py:") and "alerts imports models.executor" in p for p in problems)
    assert any(
        p.startswith("pipeline/web/dashboard.py:") and "imports pipeline.service" in p for p in problems
    )
    assert any(
        p.startswith("pipeline/web/report.py:") and p.endswith("imports pipeline.service") for p in problems
    )


def test_a_new_room_must_be_placed_in_the_table(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    (root / "pipeline/scraper").mkdir()
    (root / "pipeline/scraper/__init__.py").write_text('"""Not yet placed."""\n', encoding="utf-8")
    assert violations(root) == [
        "pipeline/scraper/__init__.py: pipeline.scraper is not in the layering table (tests/test_layering.py)"
    ]


def test_every_package_says_what_lives_there_and_what_it_may_import() -> None:
    for init in sorted(REPO_ROOT.glob("*/**/__init__.py")):
        if init.parts[len(REPO_ROOT.parts)] not in PACKAGES:
            continue
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "import" in docstring, f"{init.relative_to(REPO_ROOT)}: docstring must say what it may import"
