"""Copies of the repository's infra inputs in a temporary directory, for tests that change
one thing and show that the checks notice."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.infra.checks import ROOT, Checkout

# DESIGN §2's public functions; the workers come from shared/topology.yaml.
PUBLIC_FUNCTIONS = (
    "agents_execute",
    "agents_triage",
    "agents_data",
    "agents_optimization",
    "usage_ingest",
    "otlp_ingest",
    "runs_get",
    "threads_get",
    "workspaces",
)


def main_py(targets: Sequence[str]) -> str:
    """A functions/main.py defining `targets` (devstack.function_targets reads only the AST)."""
    lines = ["import functions_framework", ""]
    for t in targets:
        lines += ["", "@functions_framework.http", f"def {t}(request):", "    return 'ok'", ""]
    return "\n".join(lines)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


MakeCheckout = Callable[..., Checkout]


@pytest.fixture
def make_checkout(tmp_path: Path) -> MakeCheckout:
    """`make_checkout(extra_targets=(), without=())`: infra/*.tf, the example tfvars, the
    BigQuery schemas and shared/topology.yaml copied, and a functions/main.py with DESIGN's
    public functions and the topology's workers (plus `extra_targets`, minus `without`)."""

    def _make(extra_targets: Sequence[str] = (), without: Sequence[str] = ()) -> Checkout:
        root = tmp_path / "repo"
        (root / "infra").mkdir(parents=True)
        for src in [*ROOT.joinpath("infra").glob("*.tf"), ROOT / "infra" / "apex.tfvars.example"]:
            shutil.copy(src, root / "infra" / src.name)
        # The BigQuery tables' schemas (bigquery.tf reads them with file()).
        shutil.copytree(ROOT / "infra" / "schemas", root / "infra" / "schemas")
        (root / "shared").mkdir()
        shutil.copy(ROOT / "shared" / "topology.yaml", root / "shared" / "topology.yaml")
        workers = Checkout(root).topology.workers()
        targets = [t for t in [*PUBLIC_FUNCTIONS, *workers, *extra_targets] if t not in without]
        (root / "functions").mkdir()
        (root / "functions" / "main.py").write_text(main_py(targets), encoding="utf-8")
        return Checkout(root)

    return _make
