"""cloudbuild.yaml: test, build and push the relay, package the functions, plan, and apply on
the deploy branch only; terraform from the hashicorp/terraform image of a pinned version."""

from __future__ import annotations

import json
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


def _functions_python() -> str:
    runtimes = {
        f.get("build_config", 0, "runtime")
        for f in Checkout(ROOT).module().instances("google_cloudfunctions2_function")
    }
    assert runtimes == {"python312"}, runtimes
    return "3.12"


def _runs_python(step: dict[str, Any]) -> bool:
    entry = str(step.get("entrypoint", ""))
    return (
        entry.startswith("python")
        or "make test" in script(step)
        or bool(re.search(r"\bpython3?\b|\.py\b", script(step)))
    )


def test_python_runs_on_the_functions_python(build: dict[str, Any]) -> None:
    """The suite and the function bundle on the Python the functions and the relay run."""
    python_steps = {i: step for i, step in steps(build).items() if _runs_python(step)}
    assert {"test", "package-functions"} <= set(python_steps)
    version = re.escape(_functions_python())
    for step_id, step in python_steps.items():
        assert re.fullmatch(rf"python:{version}-slim(-[a-z]+)?", step["name"]), (
            f"step {step_id} runs Python in {step['name']}"
        )


def test_the_test_step_brings_node_20_for_the_emulators(build: dict[str, Any]) -> None:
    """Node.js from Debian's packages of the image's release: Debian 13 (trixie) has 20, the
    version devstack/package.json asks for (Debian 12 has 18)."""
    step = steps(build)["test"]
    assert step["name"].endswith("-trixie")
    assert re.search(r"apt-get install [^\n]*\bnodejs\b[^\n]*\bnpm\b", script(step))
    engines = json.loads((ROOT / "devstack" / "package.json").read_text(encoding="utf-8"))
    assert engines["engines"]["node"] == ">=20"


def test_public_functions_are_opened_after_each_apply_on_the_deploy_branch(
    build: dict[str, Any],
) -> None:
    """Public through the invoker check disabled on each function's service (no allUsers
    grant: domain-restricted sharing refuses it), for the services Terraform lists."""
    s = steps(build)
    step = s["public-functions"]
    assert step["waitFor"] == ["terraform-apply"]
    text = script(step)
    assert 'if [ "$BRANCH_NAME" != "${_DEPLOY_BRANCH}" ]' in text
    assert re.search(
        r"for service in \$\$\(cat /workspace/public_function_services\); do\s+"
        r'gcloud run services update "\$\$service" --region="\$\$region" --no-invoker-iam-check',
        text,
    )
    apply = script(s["terraform-apply"])
    assert (
        "terraform output -raw public_function_services > /workspace/public_function_services"
        in apply
    )
    assert "terraform output -raw region > /workspace/region" in apply
    outputs = Checkout(ROOT).module().output_blocks
    assert {"public_function_services", "region"} <= set(outputs)
