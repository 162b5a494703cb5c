"""The functions-framework targets defined in `functions/main.py`, found without importing it.

Reading the source (not importing it) keeps the runner independent of the functions'
settings, and gives Terraform's tests (tests/infra) the same list the local stack runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

DECORATORS = {"http", "cloud_event"}


def _is_target_decorator(node: ast.expr) -> bool:
    # @functions_framework.http, @http, and the called forms @functions_framework.http(...)
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return (
            node.attr in DECORATORS
            and isinstance(node.value, ast.Name)
            and node.value.id == "functions_framework"
        )
    return isinstance(node, ast.Name) and node.id in DECORATORS


def discover_targets(main_py: Path) -> list[str]:
    """Names of the module-level functions decorated as functions-framework targets."""
    if not main_py.exists():
        return []
    tree = ast.parse(main_py.read_text(encoding="utf-8"), filename=str(main_py))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(_is_target_decorator(d) for d in node.decorator_list)
    ]
