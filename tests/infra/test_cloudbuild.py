"""cloudbuild.yaml: test, build and push the relay, package the functions, plan, and apply on
the deploy branch only; terraform from the hashicorp/terraform image of a pinned version."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.infra import checks
from tests.infra.checks import ROOT, Checkout


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps(build: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in build["steps"]}


def script(step: dict[str, Any]) -> str:
    return " ".join(str(a) for a in step.get("args", []))


def test_every_step_is_named_once(build: dict[str, Any]) -> None:
    ids = [s.get("id") for s in build["steps"]]
    assert all(ids), "a step without an id"
    assert len(ids) == len(set(ids))
    for required in (
        "test",
        "build-relay",
        "push-relay",
        "package-functions",
        "terraform-plan",
        "terraform-apply",
    ):
        assert required in ids


def test_what_each_step_does(build: dict[str, Any]) -> None:
    s = steps(build)
    assert "make test" in script(s["test"])
    assert "relay/Dockerfile" in script(s["build-relay"])
    assert "docker push" in script(s["push-relay"])
    assert "infra/package_functions.py" in script(s["package-functions"])
    assert "infra/build/functions-source.zip" in script(s["package-functions"])
    assert re.search(r"terraform plan .*-out=tfplan", script(s["terraform-plan"]))
    assert "relay_image=" in script(s["terraform-plan"])


def test_terraform_runs_from_the_pinned_image_only(build: dict[str, Any]) -> None:
    required = checks.terraform_required_version(Checkout(ROOT))
    for step in build["steps"]:
        uses_terraform = step.get("name", "").startswith("hashicorp/terraform") or re.search(
            r"\bterraform (init|plan|apply|output)", script(step)
        )
        if not uses_terraform:
            continue
        m = re.fullmatch(r"hashicorp/terraform:(\d+\.\d+\.\d+)", step["name"])
        assert m, f"step {step['id']}: terraform image not pinned to a version: {step['name']}"
        assert checks.version_satisfies(m.group(1), required), (step["id"], required)


def test_apply_happens_on_the_deploy_branch_only(build: dict[str, Any]) -> None:
    s = steps(build)
    applying = [i for i, step in s.items() if "terraform apply" in script(step)]
    assert applying == ["terraform-apply"]
    apply = script(s["terraform-apply"])
    assert re.search(r'if \[ "\$BRANCH_NAME" = "\$\{_DEPLOY_BRANCH\}" \]', apply)
    assert "terraform apply -input=false tfplan" in apply
    assert build["substitutions"]["_DEPLOY_BRANCH"] == "main"


def test_apply_waits_for_the_tests(build: dict[str, Any]) -> None:
    ordered = build["steps"]
    ids = [s["id"] for s in ordered]

    def deps(step_id: str) -> set[str]:
        step = ordered[ids.index(step_id)]
        wait = step.get("waitFor")
        direct = set(ids[: ids.index(step_id)]) if wait is None else {w for w in wait if w != "-"}
        assert direct <= set(ids), f"{step_id} waits for unknown steps {direct - set(ids)}"
        out = set(direct)
        for d in direct:
            out |= deps(d)
        return out

    assert {"test", "terraform-plan", "push-relay", "package-functions"} <= deps("terraform-apply")
    assert "test" in deps("push-relay")


def test_the_version_constraint_reader() -> None:
    assert checks.version_satisfies("1.11.4", ">= 1.11.0, < 2.0.0")
    assert not checks.version_satisfies("2.0.0", ">= 1.11.0, < 2.0.0")
    assert checks.version_satisfies("1.11.9", "~> 1.11.4")
    assert not checks.version_satisfies("1.12.0", "~> 1.11.4")
    assert checks.version_satisfies("7.45.0", "= 7.45.0")
