"""checkov on infra/: no failed check, and every skip carries its reason, in the code and in
infra/README.md. checkov runs from its own venv (.venv/checkov, `make test` installs it from
infra/requirements-checkov.txt): its pins clash with the app's."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.checks import ROOT

CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not CHECKOV.is_file():
        pytest.fail(
            f"{CHECKOV} is missing: `make test` installs it (target .venv/checkov/.installed, "
            f"from infra/requirements-checkov.txt)"
        )
    proc = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(ROOT / "infra"),
            "--framework",
            "terraform",
            "--output",
            "json",
            "--skip-download",  # no calls to the vendor's platform: offline and repeatable
            "--skip-path",
            r"\.terraform",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"},
    )
    assert proc.returncode in (0, 1), f"checkov crashed ({proc.returncode}):\n{proc.stderr}"
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    (terraform,) = [r for r in reports if r.get("check_type") == "terraform"]
    assert isinstance(terraform, dict)
    return terraform


def _summary(report: dict[str, Any]) -> str:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
    return "\n".join(failed)


def test_checkov_reports_no_failed_check(report: dict[str, Any]) -> None:
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, "checkov could not parse part of infra/"
    assert summary["resource_count"] >= 50, f"checkov saw too little of infra/: {summary}"
    assert summary["passed"] > 0
    assert summary["failed"] == 0, _summary(report)


def _skip_comments() -> list[tuple[Path, str, str]]:
    found = []
    for path in sorted((ROOT / "infra").glob("*.tf")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if m := SKIP_COMMENT.search(line):
                found.append((path, m.group(1), (m.group(2) or "").strip()))
    return found


def test_every_skip_in_the_code_gives_its_reason() -> None:
    for path, check_id, reason in _skip_comments():
        assert len(reason) >= 20, f"{path.name}: checkov:skip={check_id} needs a written reason"


def test_every_skip_is_used_and_listed_with_its_reason_in_the_readme(
    report: dict[str, Any],
) -> None:
    skipped = report["results"]["skipped_checks"]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment")
        assert reason, f"{check['check_id']} skipped without a reason"
    used = {c["check_id"] for c in skipped}
    in_code = {check_id for _path, check_id, _reason in _skip_comments()}
    assert in_code == used, f"skip comments that match no check: {sorted(in_code - used)}"
    readme = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    for check_id in sorted(used):
        rows = [line for line in readme.splitlines() if line.startswith("|")]
        row = next((line for line in rows if f"`{check_id}`" in line), None)
        assert row is not None, f"infra/README.md does not list the skipped check {check_id}"
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) >= 3, f"infra/README.md: the row of {check_id} needs resource and reason"
        assert len(cells[-1]) >= 20, f"infra/README.md: no reason for {check_id}"
