"""The Terraform in infra/ against the code it deploys (issue 5): read with tfeval under every
scenario, compared with functions/main.py, shared/topology.yaml and shared/config.py."""

from __future__ import annotations

import pytest

from tests.infra import checks
from tests.infra.checks import ROOT, Checkout


@pytest.fixture(scope="module")
def repo() -> Checkout:
    return Checkout(ROOT)


def test_every_resource_output_and_validation_evaluates_in_every_scenario(repo: Checkout) -> None:
    assert checks.plan_problems(repo) == []


def test_every_function_target_is_deployed_once_and_nothing_else_is(repo: Checkout) -> None:
    assert repo.targets, "functions/main.py defines no targets"
    assert checks.function_problems(repo) == []


def test_topics_and_subscriptions_are_the_topology_and_every_worker_is_fed(
    repo: Checkout,
) -> None:
    assert checks.pubsub_problems(repo) == []


def test_every_env_var_the_code_reads_is_set_on_its_readers(repo: Checkout) -> None:
    assert checks.env_problems(repo) == []


def test_no_owner_or_editor_and_one_service_account_per_workload(repo: Checkout) -> None:
    assert checks.iam_problems(repo) == []


def test_firestore_indexes_and_ttl_policies(repo: Checkout) -> None:
    assert checks.firestore_problems(repo) == []


def test_relay_runs_websockets_for_an_hour_with_affinity(repo: Checkout) -> None:
    assert checks.relay_problems(repo) == []


def test_the_load_balancer_reaches_each_gen2_function_as_a_cloud_run_service(
    repo: Checkout,
) -> None:
    assert checks.loadbalancer_problems(repo) == []


def test_providers_are_pinned(repo: Checkout) -> None:
    assert checks.version_problems(repo) == []


def test_the_example_tfvars_sets_only_declared_variables(repo: Checkout) -> None:
    # Module() raises on a value for an undeclared variable; every variable without a
    # default must have a value there.
    module = repo.module()
    for name, block in module.variable_blocks.items():
        if "default" not in block.attributes():
            assert name in module.given, f"apex.tfvars.example does not set {name}"


def test_the_scenarios_switch_on_every_optional_part(repo: Checkout) -> None:
    """Guards the other tests' reach: each optional resource exists in some scenario."""
    optional = [
        "google_compute_url_map",
        "google_secret_manager_secret",
        "google_secret_manager_secret_iam_member",
    ]
    for type_ in optional:
        assert any(repo.module(sc).instances(type_) for sc in checks.SCENARIOS), type_
    roles = {
        i.get("role")
        for sc in checks.SCENARIOS
        for i in repo.module(sc).instances("google_project_iam_member")
    }
    assert "roles/aiplatform.user" in roles


def test_secrets_reach_only_their_readers_and_the_pepper_is_never_stored(repo: Checkout) -> None:
    assert checks.secret_problems(repo) == []
    # The pepper: a Terraform-made version, readable by the public functions' account alone.
    module = repo.module()
    (grant,) = [
        g
        for g in module.instances("google_secret_manager_secret_iam_member")
        if "key_pepper" in g.address
    ]
    assert checks.principal(grant.get("member")) == (
        "serviceAccount:google_service_account.public_functions"
    )
    (version,) = module.instances("google_secret_manager_secret_version")
    assert version.get("secret_data_wo") is not None
