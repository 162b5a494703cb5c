"""The checks of test_infra_matches_code.py fail when code and Terraform drift apart: each test
changes one thing in a copy of the tree (conftest.make_checkout) and shows the problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.function_targets import discover_targets
from shared.config import EnvVar
from tests.infra import checks
from tests.infra.conftest import PUBLIC_FUNCTIONS, MakeCheckout, edit, main_py


def test_the_copied_tree_has_no_problems(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    assert checks.plan_problems(co) == []
    assert checks.function_problems(co) == []
    assert checks.pubsub_problems(co) == []
    assert checks.env_problems(co) == []
    assert checks.iam_problems(co) == []
    assert checks.relay_problems(co) == []
    assert checks.loadbalancer_problems(co) == []
    assert checks.secret_problems(co) == []


def test_a_function_added_to_functions_without_terraform_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout(extra_targets=["agents_forecast"])
    problems = checks.function_problems(co)
    assert len(problems) == 1
    assert "'agents_forecast'" in problems[0]
    assert "has no google_cloudfunctions2_function" in problems[0]


def test_a_function_appended_to_the_real_main_py_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    real = (checks.ROOT / "functions" / "main.py").read_text(encoding="utf-8")
    co.functions_main.write_text(
        real + "\n\n@functions_framework.http\ndef agents_forecast(request):\n    return 'x'\n",
        encoding="utf-8",
    )
    problems = checks.function_problems(co)
    assert len(problems) == 1
    assert problems[0].startswith(
        "functions/main.py target 'agents_forecast' (public function) has no "
        "google_cloudfunctions2_function with entry_point 'agents_forecast' in infra/"
    )


def test_a_function_removed_from_functions_but_deployed_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout(without=["runs_get"])
    problems = checks.function_problems(co)
    assert problems == [
        "google_cloudfunctions2_function.public[\"runs_get\"] runs entry_point 'runs_get', "
        "which functions/main.py does not define"
    ]


def test_a_public_function_added_to_terraform_too_passes(make_checkout: MakeCheckout) -> None:
    co = make_checkout(extra_targets=["agents_forecast"])
    edit(
        co.infra / "functions.tf",
        '    threads_get         = { memory = "256Mi", timeout_seconds = 30 }\n',
        '    threads_get         = { memory = "256Mi", timeout_seconds = 30 }\n'
        '    agents_forecast     = { memory = "256Mi", timeout_seconds = 30 }\n',
    )
    assert checks.function_problems(co) == []
    assert checks.env_problems(co) == []


def _add_work_queue(co: checks.Checkout) -> None:
    edit(
        co.root / "shared" / "topology.yaml",
        "  - name: apex-events\n",
        "  - name: apex-forecast\n    purpose: Forecast runs.\n  - name: apex-events\n",
    )
    edit(
        co.root / "shared" / "topology.yaml",
        "dead_letters:\n",
        "  - topic: apex-forecast\n    subscription: apex-forecast-worker\n"
        "    push_to: forecast_worker\n\ndead_letters:\n",
    )


def test_a_work_queue_in_the_topology_reaches_terraform_by_itself(
    make_checkout: MakeCheckout,
) -> None:
    co = make_checkout(extra_targets=["forecast_worker"])
    _add_work_queue(co)
    assert checks.pubsub_problems(co) == []
    assert checks.function_problems(co) == []
    names = {s.get("name") for s in co.module().instances("google_pubsub_subscription")}
    assert {"apex-forecast-worker", "apex-forecast-dlq-worker", "apex-forecast-dlq-keep"} <= names


def test_a_worker_in_the_topology_without_its_target_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    _add_work_queue(co)
    problems = checks.function_problems(co)
    assert any("pushes to 'forecast_worker', which functions/main.py" in p for p in problems)
    assert any("runs entry_point 'forecast_worker'" in p for p in problems)


def test_a_subscription_without_its_dead_letter_policy_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "pubsub.tf",
        "    for_each = each.value.dead_letter_topic == null ? [] : [each.value.dead_letter_topic]",
        "    for_each = []",
    )
    problems = checks.pubsub_problems(co)
    assert (
        "worker 'triage_worker' has no push subscription on 'apex-triage' with a dead-letter policy"
        in problems
    )
    assert any("'apex-usage-aggregator'" in p and "no dead_letter_policy" in p for p in problems)


def test_a_push_to_the_wrong_worker_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "pubsub.tf",
        "push_endpoint = google_cloudfunctions2_function.worker[push_config.value]",
        'push_endpoint = google_cloudfunctions2_function.worker["data_worker"]',
    )
    problems = checks.pubsub_problems(co)
    assert any("'apex-triage-worker'" in p and "entry_point 'triage_worker'" in p for p in problems)


def test_a_topic_listed_by_hand_in_terraform_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    (co.infra / "extra.tf").write_text(
        'resource "google_pubsub_topic" "x" {\n  name = "apex-x"\n}\n'
    )
    assert checks.pubsub_problems(co) == [
        "infra/ creates topic 'apex-x', which shared/topology.yaml does not define"
    ]


def test_a_public_worker_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    (co.infra / "extra.tf").write_text(
        'resource "google_cloud_run_v2_service_iam_member" "oops" {\n'
        '  name   = google_cloudfunctions2_function.worker["data_worker"].name\n'
        '  role   = "roles/run.invoker"\n'
        '  member = "allUsers"\n'
        "}\n"
    )
    problems = checks.function_problems(co)
    assert len(problems) == 1
    assert problems[0].startswith('google_cloudfunctions2_function.worker["data_worker"]: a worker')


def test_an_env_var_missing_on_a_reader_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "relay.tf",
        '    APEX_CORS_ORIGINS             = join(",", local.cors_origins)\n',
        "",
    )
    problems = checks.env_problems(co)
    assert len(problems) == 1
    assert problems[0].startswith(
        "google_cloud_run_v2_service.relay (relay) must set APEX_CORS_ORIGINS"
    )


def test_a_variable_the_code_starts_reading_must_reach_terraform(
    make_checkout: MakeCheckout,
) -> None:
    co = make_checkout()
    registry = checks.env_registry() | {
        "APEX_NEW_SETTING": EnvVar(readers=frozenset({"workers"}), required=True, description="x")
    }
    problems = checks.env_problems(co, registry)
    workers = co.topology.workers()
    assert len(problems) == len(workers)
    assert all("must set APEX_NEW_SETTING" in p for p in problems)


def test_an_unregistered_or_misplaced_env_var_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    worker_env = "      APEX_ANSWER_WRITER   = var.answer_writer\n"
    edit(
        co.infra / "functions.tf",
        worker_env,
        worker_env + '      APEX_CORS_ORIGIN = "typo"\n      APEX_CORS_ORIGINS = "misplaced"\n',
    )
    problems = checks.env_problems(co)
    assert any("sets APEX_CORS_ORIGIN [" in p and "does not list" in p for p in problems)
    assert any(
        "(workers) sets APEX_CORS_ORIGINS, which only public_functions, relay read" in p
        for p in problems
    )


def test_owner_or_editor_anywhere_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(co.infra / "build.tf", '      "roles/run.admin",\n', '      "roles/editor",\n')
    grant = 'google_project_iam_member.deployer["roles/editor"] grants roles/editor'
    assert checks.iam_problems(co) == [f"[{sc.name}] {grant}" for sc in checks.SCENARIOS]


def test_shared_service_accounts_fail(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "relay.tf",
        "    service_account                  = google_service_account.relay.email",
        "    service_account                  = google_service_account.workers.email",
    )
    assert any("workloads share a service account" in p for p in checks.iam_problems(co))


def test_a_for_each_key_known_only_after_apply_fails_the_plan(make_checkout: MakeCheckout) -> None:
    """The mistake Terraform reports as "Invalid for_each argument"."""
    co = make_checkout()
    (co.infra / "extra.tf").write_text(
        'resource "google_project_iam_member" "bad" {\n'
        "  for_each = toset([google_service_account.relay.email])\n"
        '  project  = "p"\n'
        '  role     = "roles/viewer"\n'
        "  member   = each.key\n"
        "}\n"
    )
    problems = checks.plan_problems(co)
    assert problems
    assert all(
        "google_project_iam_member.bad: for_each is known only after apply" in p for p in problems
    )


def test_a_missing_index_or_ttl_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(co.infra / "firestore.tf", '        { path = "status", order = "ASCENDING" },\n', "")
    edit(co.infra / "firestore.tf", '    ratelimits         = "expires_at"\n', "")
    edit(
        co.infra / "firestore.tf",
        '    usage_daily_rows         = { collection = "usage_daily", field = "rows" }\n',
        "",
    )
    assert checks.firestore_problems(co) == [
        "no composite index on 'runs' for thread_id == , status == ordered by created_at ASCENDING",
        "no TTL policy on collection group 'ratelimits' field 'expires_at'",
        "'usage_daily' field 'rows' keeps its single-field indexes",
    ]


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            '    timeout                          = "3600s"',
            '    timeout                          = "300s"',
            "relay request timeout is",
        ),
        (
            "    session_affinity                 = true",
            "    session_affinity                 = false",
            "no session affinity",
        ),
    ],
)
def test_relay_settings_are_checked(
    make_checkout: MakeCheckout, old: str, new: str, problem: str
) -> None:
    co = make_checkout()
    edit(co.infra / "relay.tf", old, new)
    assert any(problem in p for p in checks.relay_problems(co))


def test_main_py_helper_defines_the_targets(tmp_path: Path) -> None:
    path = tmp_path / "main.py"
    path.write_text(main_py(["a_b", "c_d"]))
    assert discover_targets(path) == ["a_b", "c_d"]


# Issue 11: the load balancer reaches the gen2 functions as Cloud Run services, and nothing is
# made public with an allUsers grant (organisations with domain-restricted sharing refuse it).

NEG_CLOUD_RUN = """  cloud_run {
    service = google_cloudfunctions2_function.public[each.key].name
  }
"""


def test_a_cloud_function_neg_fails(make_checkout: MakeCheckout) -> None:
    """The NEG as it was: `cloud_function` serves 1st-gen functions only."""
    co = make_checkout()
    edit(
        co.infra / "loadbalancer.tf",
        NEG_CLOUD_RUN,
        NEG_CLOUD_RUN.replace("cloud_run", "cloud_function").replace("service =", "function ="),
    )
    problems = checks.loadbalancer_problems(co)
    for entry in PUBLIC_FUNCTIONS:
        path = f"path /api/agents/{entry}"
        assert any(p.startswith(path) and "uses cloud_function" in p for p in problems), entry
        assert any(p.startswith(f"{path} reaches Cloud Run service null") for p in problems)
    assert len(problems) == 2 * len(PUBLIC_FUNCTIONS)


def test_a_neg_naming_another_functions_service_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "loadbalancer.tf",
        "    service = google_cloudfunctions2_function.public[each.key].name\n",
        '    service = google_cloudfunctions2_function.public["threads_get"].name\n',
    )
    problems = checks.loadbalancer_problems(co)
    assert len(problems) == len(PUBLIC_FUNCTIONS) - 1
    assert all('reaches Cloud Run service "apex-threads-get", not' in p for p in problems)
    assert not any(p.startswith("path /api/agents/threads_get ") for p in problems)


ROUTE_SERVICE = (
    "        service  = google_compute_backend_service.function[route_rules.value.function].id\n"
)


def test_a_route_rule_to_the_relay_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "loadbalancer.tf",
        ROUTE_SERVICE,
        "        service  = google_compute_backend_service.relay[0].id\n",
    )
    problems = checks.loadbalancer_problems(co)
    assert len(problems) == len(PUBLIC_FUNCTIONS)
    assert all('reaches Cloud Run service "apex-relay"' in p for p in problems)


def test_a_function_reached_only_at_its_exact_path_fails(make_checkout: MakeCheckout) -> None:
    """The path rules as they were: /api/agents/workspaces/<ws>/members went to the relay."""
    co = make_checkout()
    edit(
        co.infra / "loadbalancer.tf",
        "        match_rules {\n"
        '          prefix_match = "/api/agents/${route_rules.value.function}/"\n'
        "        }\n",
        "",
    )
    problems = checks.loadbalancer_problems(co)
    assert len(problems) == len(PUBLIC_FUNCTIONS)
    for entry in PUBLIC_FUNCTIONS:
        assert any(
            f"no route rule with prefix_match /api/agents/{entry}/ for " in p for p in problems
        ), entry


def test_a_function_reached_with_its_prefix_fails(make_checkout: MakeCheckout) -> None:
    """Without the rewrite the workspaces function would see /api/agents/workspaces/..."""
    co = make_checkout()
    edit(
        co.infra / "loadbalancer.tf",
        "        route_action {\n"
        "          url_rewrite {\n"
        '            path_prefix_rewrite = "/"\n'
        "          }\n"
        "        }\n",
        "",
    )
    problems = checks.loadbalancer_problems(co)
    assert len(problems) == len(PUBLIC_FUNCTIONS)
    assert all('with its prefix (path_prefix_rewrite null, not "/")' in p for p in problems)


def test_route_rules_sharing_a_priority_fail(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "loadbalancer.tf",
        "        priority = route_rules.value.priority\n",
        "        priority = 1\n",
    )
    problems = checks.loadbalancer_problems(co)
    assert len(problems) == 1
    assert "route rules share a priority" in problems[0]


def test_an_all_users_invoker_on_the_public_functions_fails(make_checkout: MakeCheckout) -> None:
    """The grant functions.tf made before: refused under domain-restricted sharing."""
    co = make_checkout()
    (co.infra / "extra.tf").write_text(
        'resource "google_cloud_run_v2_service_iam_member" "public_invoker" {\n'
        "  for_each = local.public_functions\n"
        "  location = var.region\n"
        "  name     = google_cloudfunctions2_function.public[each.key].name\n"
        '  role     = "roles/run.invoker"\n'
        '  member   = "allUsers"\n'
        "}\n"
    )
    problems = checks.function_problems(co)
    assert len(problems) == len(PUBLIC_FUNCTIONS)
    assert all("run.invoker granted to ['allUsers']" in p for p in problems)
    iam = checks.iam_problems(co)
    assert len(iam) == len(PUBLIC_FUNCTIONS) * len(checks.SCENARIOS)
    assert all("to allUsers, which domain-restricted sharing refuses" in p for p in iam)


def test_a_relay_made_public_with_all_users_fails(make_checkout: MakeCheckout) -> None:
    """relay.tf as it was: an allUsers grant instead of the disabled invoker check."""
    co = make_checkout()
    edit(co.infra / "relay.tf", "  invoker_iam_disabled = true\n", "")
    (co.infra / "extra.tf").write_text(
        'resource "google_cloud_run_v2_service_iam_member" "relay_public" {\n'
        "  location = google_cloud_run_v2_service.relay.location\n"
        "  name     = google_cloud_run_v2_service.relay.name\n"
        '  role     = "roles/run.invoker"\n'
        '  member   = "allUsers"\n'
        "}\n"
    )
    problems = checks.relay_problems(co)
    assert len(problems) == 1
    assert problems[0].startswith("relay is not public through invoker_iam_disabled = true")
    assert checks.iam_problems(co) == [
        f"[{sc.name}] google_cloud_run_v2_service_iam_member.relay_public grants "
        f"roles/run.invoker to allUsers, which domain-restricted sharing refuses"
        for sc in sorted(checks.SCENARIOS, key=lambda sc: sc.name)
    ]


OPENED = "[for name, f in google_cloudfunctions2_function.public : f.name]"


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        (
            OPENED.replace("f.name]", 'f.name if name != "runs_get"]'),
            'google_cloudfunctions2_function.public["runs_get"]: public function missing from '
            "output public_function_services",
        ),
        (
            f'concat({OPENED}, [google_cloudfunctions2_function.worker["data_worker"].name])',
            'google_cloudfunctions2_function.worker["data_worker"]: a worker is listed in output '
            "public_function_services",
        ),
    ],
)
def test_the_functions_cloud_build_opens_are_the_public_ones(
    make_checkout: MakeCheckout, new: str, problem: str
) -> None:
    co = make_checkout()
    edit(co.infra / "outputs.tf", OPENED, new)
    problems = checks.function_problems(co)
    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_no_output_of_the_functions_to_open_fails(make_checkout: MakeCheckout) -> None:
    """outputs.tf as it was: nothing tells Cloud Build which services to open."""
    co = make_checkout()
    text = (co.infra / "outputs.tf").read_text(encoding="utf-8")
    start = text.index('output "public_function_services" {')
    end = text.index("}\n", start) + 2
    (co.infra / "outputs.tf").write_text(text[:start] + text[end:], encoding="utf-8")
    assert checks.function_problems(co) == [
        "no output public_function_services (cloudbuild.yaml opens the services it lists)"
    ]


def test_a_function_name_that_is_no_cloud_run_service_name_fails(
    make_checkout: MakeCheckout,
) -> None:
    """Cloud Run would name the service otherwise, and the NEG would miss it."""
    co = make_checkout()
    edit(
        co.infra / "functions.tf",
        '{ for f in keys(local.public_functions) : f => "apex-${replace(f, "_", "-")}" },',
        '{ for f in keys(local.public_functions) : f => "apex-${f}" },',
    )
    problems = checks.function_problems(co)
    # Every public function with an underscore in its name (`workspaces` has none).
    underscored = [f for f in PUBLIC_FUNCTIONS if "_" in f]
    assert len(underscored) >= 7
    assert len(problems) == len(underscored)
    for f in underscored:
        named = [
            p for p in problems if p.startswith(f'google_cloudfunctions2_function.public["{f}"]')
        ]
        assert len(named) == 1, f
        assert f'name "apex-{f}" is not a Cloud Run service name' in named[0]


# Issue 12: the API keys' pepper, a secret of the public functions alone, never stored.

PEPPER_READER = "  member    = google_service_account.public_functions.member\n"


def test_the_pepper_readable_by_the_workers_too_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    (co.infra / "extra.tf").write_text(
        'resource "google_secret_manager_secret_iam_member" "pepper_workers" {\n'
        "  secret_id = google_secret_manager_secret.key_pepper.id\n"
        '  role      = "roles/secretmanager.secretAccessor"\n'
        "  member    = google_service_account.workers.member\n"
        "}\n"
    )
    assert checks.secret_problems(co) == [
        f"[{sc.name}] roles/secretmanager.secretAccessor on google_secret_manager_secret."
        f"key_pepper granted to ['serviceAccount:google_service_account.workers'], whose "
        f"services do not read it"
        for sc in sorted(checks.SCENARIOS, key=lambda sc: sc.name)
    ]


def test_the_pepper_without_its_grant_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "secrets.tf",
        PEPPER_READER,
        "  member    = google_service_account.relay.member\n",
    )
    problems = checks.secret_problems(co)
    no_access = [p for p in problems if "has no roles/secretmanager.secretAccessor" in p]
    assert len(no_access) == len(PUBLIC_FUNCTIONS) * len(checks.SCENARIOS)
    assert all("secret env APEX_KEY_PEPPER" in p for p in no_access)
    assert any("granted to ['serviceAccount:google_service_account.relay']" in p for p in problems)


def test_the_pepper_as_a_plain_env_var_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "functions.tf",
        "      APEX_ANSWER_WRITER              = var.answer_writer\n",
        "      APEX_ANSWER_WRITER              = var.answer_writer\n"
        '      APEX_KEY_PEPPER                 = "a-pepper-in-the-state-and-the-console"\n',
    )
    problems = checks.env_problems(co)
    assert len(problems) == len(PUBLIC_FUNCTIONS) * len(checks.SCENARIOS)
    assert all("APEX_KEY_PEPPER must be a secret env ref" in p for p in problems)


def test_the_pepper_on_latest_fails(make_checkout: MakeCheckout) -> None:
    """A version added later would change the pepper under every stored key hash."""
    co = make_checkout()
    edit(
        co.infra / "functions.tf",
        "      version = google_secret_manager_secret_version.key_pepper.version\n",
        '      version = "latest"\n',
    )
    problems = checks.secret_problems(co)
    assert len(problems) == len(PUBLIC_FUNCTIONS) * len(checks.SCENARIOS)
    assert all('version "latest" is not pinned to a version of' in p for p in problems)


def test_the_pepper_stored_in_the_state_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "secrets.tf",
        "  secret_data_wo = ephemeral.random_password.key_pepper.result\n",
        "  secret_data    = ephemeral.random_password.key_pepper.result\n",
    )
    # Terraform refuses an ephemeral value outside a write-only argument...
    # (also in every function that refers to the version)
    problems = checks.plan_problems(co)
    assert problems
    assert all(
        "google_secret_manager_secret_version.key_pepper.secret_data: " in p for p in problems
    )
    assert all("is ephemeral: only a write-only argument" in p for p in problems)
    for sc in checks.SCENARIOS:
        assert any(
            p.startswith(f"[{sc.name}] google_secret_manager_secret_version.key_pepper.secret_data")
            for p in problems
        ), sc.name
    # ...and a value that is not ephemeral would be stored.
    edit(
        co.infra / "secrets.tf",
        "  secret_data    = ephemeral.random_password.key_pepper.result\n",
        '  secret_data    = "a-pepper-written-into-the-state"\n',
    )
    co = checks.Checkout(co.root)  # read the edited files afresh
    problems = checks.secret_problems(co)
    assert len(problems) == len(checks.SCENARIOS)
    assert all("secret_data is stored in the plan and the state" in p for p in problems)


def test_the_relay_pointing_at_another_function_fails(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "relay.tf",
        'google_cloudfunctions2_function.public["workspaces"].service_config[0].uri',
        'google_cloudfunctions2_function.public["threads_get"].service_config[0].uri',
    )
    problems = checks.relay_problems(co)
    assert len(problems) == 1
    assert problems[0].startswith("relay APEX_WORKSPACES_URL is ")
    assert problems[0].endswith("not the URL of the workspaces function")
