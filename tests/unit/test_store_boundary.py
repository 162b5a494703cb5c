"""Above the stores, code depends on the store protocols only (shared/store/interfaces.py):
no module outside ``shared/store/`` imports Firestore or reaches into a client (``.db``),
and only the composition root (``shared/services.py``) names a Firestore store."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The packages that run in production, without the stores themselves.
ABOVE_THE_STORES = ("shared", "relay", "functions")
FIRESTORE_MODULES = ("google.cloud.firestore", "google.cloud.firestore_v1")
FIRESTORE_STORES = (
    "shared.store.runs",
    "shared.store.threads",
    "shared.store.usage",
    "shared.store.dedup",
    "shared.store.ratelimit",
    "shared.store.storage",
    "shared.store.raw_writes",
    "shared.store.budgets",
)
COMPOSITION_ROOT = Path("shared/services.py")


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for package in ABOVE_THE_STORES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative.parts[:2] == ("shared", "store") or "node_modules" in relative.parts:
                continue
            yield relative, ast.parse(path.read_text(encoding="utf-8"), str(relative))


def _imported(tree: ast.Module) -> Iterator[str]:
    """Every module (and ``module.name``) a file imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _under(name: str, modules: tuple[str, ...]) -> bool:
    return any(name == m or name.startswith(f"{m}.") for m in modules)


def test_the_scan_sees_the_modules_it_guards() -> None:
    seen = {path for path, _ in _modules()}
    for guarded in ("shared/agents/pipeline.py", "shared/chat.py", "relay/app.py"):
        assert Path(guarded) in seen
    assert COMPOSITION_ROOT in seen


def test_nothing_above_the_stores_imports_firestore_or_reaches_into_a_client() -> None:
    found = []
    for path, tree in _modules():
        if path != COMPOSITION_ROOT:
            found += [
                f"{path}: imports {n}" for n in _imported(tree) if _under(n, FIRESTORE_MODULES)
            ]
        found += [
            f"{path}:{node.lineno}: .db"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "db"
        ]
    assert found == []


def test_only_the_composition_root_names_a_firestore_store() -> None:
    found = [
        f"{path}: imports {name}"
        for path, tree in _modules()
        if path != COMPOSITION_ROOT
        for name in _imported(tree)
        if _under(name, FIRESTORE_STORES)
    ]
    assert found == []
