from __future__ import annotations

from pathlib import Path

from devstack.function_targets import discover_targets


def test_decorated_module_level_functions_are_targets(tmp_path: Path) -> None:
    main = tmp_path / "main.py"
    main.write_text(
        "import functions_framework\n"
        "from functions_framework import http\n"
        "@functions_framework.http\n"
        "def agents_execute(request): ...\n"
        "@http\n"
        "def triage_worker(request): ...\n"
        "@functions_framework.cloud_event\n"
        "def on_event(event): ...\n"
        "def helper(): ...\n"
        "@other.http\n"
        "def not_a_target(request): ...\n"
    )
    assert discover_targets(main) == ["agents_execute", "triage_worker", "on_event"]


def test_no_main_means_no_targets(tmp_path: Path) -> None:
    assert discover_targets(tmp_path / "main.py") == []
