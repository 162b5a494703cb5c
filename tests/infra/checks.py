"""What the infra tests check: functions from a checkout (the repository, or a copy of it that a
test changed) to a list of problems, each a sentence that says what is wrong and where.

Terraform is read through `tfeval` under a few scenarios (sets of variable values) that switch
on every optional part, and compared with the code: the functions-framework targets in
`functions/main.py` (found by `devstack.function_targets`), the Pub/Sub topology
(`shared/topology.yaml` through `shared.topology`), the environment variables the code reads
(`shared.config.ENV_VARS`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from devstack.function_targets import discover_targets
from shared.config import ENV_VARS, EnvVar, Workload
from shared.topology import Topology
from tests.infra.tfeval import EvalError, Instance, Module, Unknown, referenced_instance, render

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Scenario:
    name: str
    variables: Mapping[str, Any]


# The example tfvars, then each optional part switched on (load balancer, Gemini both ways).
SCENARIOS = (
    Scenario("apex.tfvars.example", {}),
    Scenario(
        "gemini on vertex, load balancer, extra origin",
        {
            "answer_writer": "gemini",
            "gemini_backend": "vertex",
            "gemini_base_url": "https://gemini-proxy.example.com",
            "domain": "apex.example.com",
            "web_origins": ["https://dashboard.example.com:8443"],
        },
    ),
    Scenario("gemini with an API key", {"answer_writer": "gemini", "gemini_backend": "api_key"}),
)
DEFAULT = SCENARIOS[0]

# Read by the relay for the chat page's Firebase web config (issue 5). Checked like ENV_VARS'
# entries; once shared/config.py registers them, its entries are used instead.
RELAY_EXTRA_ENV: dict[str, EnvVar] = {
    "APEX_FIREBASE_API_KEY": EnvVar(
        readers=frozenset({"relay"}), required=True, description="Firebase web API key"
    ),
    "APEX_FIREBASE_AUTH_DOMAIN": EnvVar(
        readers=frozenset({"relay"}), required=True, description="Firebase Auth domain"
    ),
}

# The relay's settings that are a function's URL (for the chat page), and that function.
RELAY_FUNCTION_URLS = {
    "APEX_THREADS_GET_URL": "threads_get",
    "APEX_WORKSPACES_URL": "workspaces",
    "APEX_AGENTS_DATA_URL": "agents_data",
    "APEX_AGENTS_OPTIMIZATION_URL": "agents_optimization",
}

# The queries the code makes that need a composite index (DESIGN §4; shared/store):
# collection, equality fields, (ordered field, direction).
COMPOSITE_QUERIES = (
    ("runs", ("thread_id", "status"), ("created_at", "ASCENDING")),
    ("threads", ("owner_uid", "workspace_id"), ("updated_at", "DESCENDING")),
)
TTL_FIELDS = (
    ("dedup", "expires_at"),
    ("ratelimits", "expires_at"),
    ("usage_hash_windows", "expires_at"),
)
# Large or churning fields no query reads by (the rollup blobs, a window marker's slots):
# exempt from single-field indexing (shared/store/usage.py writes them).
UNINDEXED_FIELDS = (
    ("usage_daily", "rows"),
    ("usage_daily", "catalogue"),
    ("usage_daily_users", "rows"),
    ("usage_hash_windows", "slots"),
)

FORBIDDEN_ROLES = {"roles/owner", "roles/editor"}
# Variables whose values are secrets: only ever a Secret Manager secret env ref, never plain
# (a plain value is in the plan, the state and the service's configuration).
SECRET_ENV = ("APEX_KEY_PEPPER", "GEMINI_API_KEY")
# Made by Terraform and pinned: a new version of the pepper would revoke every API key.
PINNED_SECRET_ENV = ("APEX_KEY_PEPPER",)
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
# Cloud Run service names (the NEG's cloud_run.service, RFC 1035): a gen2 function's service
# carries the function's name when that name is one already.
SERVICE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# The output cloudbuild.yaml's step public-functions reads: the services it opens.
OPENED_OUTPUT = "public_function_services"
INVOKER_ROLES = {"roles/run.invoker", "roles/cloudfunctions.invoker"}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
IAM_TYPES_BY_NAME = {
    "google_cloud_run_v2_service_iam_member": "name",
    "google_cloud_run_v2_service_iam_binding": "name",
    "google_cloud_run_service_iam_member": "service",
    "google_cloud_run_service_iam_binding": "service",
    "google_cloudfunctions2_function_iam_member": "cloud_function",
    "google_cloudfunctions2_function_iam_binding": "cloud_function",
}


@dataclass
class Checkout:
    """A repository tree: the real one, or a copy in a temporary directory."""

    root: Path
    _modules: dict[str, Module] = field(default_factory=dict, repr=False)

    @property
    def infra(self) -> Path:
        return self.root / "infra"

    @property
    def functions_main(self) -> Path:
        return self.root / "functions" / "main.py"

    @cached_property
    def topology(self) -> Topology:
        path = self.root / "shared" / "topology.yaml"
        return Topology.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))

    @cached_property
    def targets(self) -> list[str]:
        return discover_targets(self.functions_main)

    def module(self, scenario: Scenario = DEFAULT) -> Module:
        if scenario.name not in self._modules:
            self._modules[scenario.name] = Module(
                self.infra, scenario.variables, tfvars=self.infra / "apex.tfvars.example"
            )
        return self._modules[scenario.name]


# --------------------------------------------------------------------------------------------
# Reading values


def principal(value: Any) -> str:
    """An IAM member in one spelling: `allUsers`, `serviceAccount:<address of the account>`
    for a service account made here, or the literal member."""
    if isinstance(value, Unknown):
        if value.ref is not None and value.ref.endswith((".member", ".email")):
            return "serviceAccount:" + value.ref.rsplit(".", 1)[0]
        m = re.fullmatch(r"serviceAccount:\$\{([^{}]+)\.email\}", value.text)
        if m:
            return "serviceAccount:" + m.group(1)
        return value.text
    return str(value)


def resource_name(module: Module, value: Any) -> str | None:
    """The short name a reference or a resource path names (`.../topics/x` -> `x`)."""
    if isinstance(value, str):
        return value.rsplit("/", 1)[-1]
    target = referenced_instance(module, value, ("id", "name"))
    if target is not None:
        name = target.get("name")
        return name if isinstance(name, str) else None
    return None


def function_of(module: Module, value: Any) -> Instance | None:
    """The google_cloudfunctions2_function whose URL `value` is."""
    found = referenced_instance(module, value, ("service_config[0].uri", "url"))
    if found is not None and found.type == "google_cloudfunctions2_function":
        return found
    return None


def seconds(value: Any) -> float | None:
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?s", value):
        return float(value[:-1])
    return None


# --------------------------------------------------------------------------------------------
# The checks


def plan_problems(co: Checkout) -> list[str]:
    """Every resource, data source, output and variable validation evaluates, in every
    scenario (tfeval's stand-in for `terraform validate` and an offline plan)."""
    problems: list[str] = []
    for sc in SCENARIOS:
        try:
            module = co.module(sc)
            instances = [
                i for mode in ("resource", "data", "ephemeral") for i in module.instances(mode=mode)
            ]
        except EvalError as e:
            problems.append(f"[{sc.name}] {e}")
            continue
        for inst in instances:
            try:
                _ = inst.config
            except EvalError as e:
                problems.append(f"[{sc.name}] {e}")
        for name in module.output_blocks:
            try:
                module.output(name)
            except EvalError as e:
                problems.append(f"[{sc.name}] {e}")
        problems.extend(f"[{sc.name}] {f}" for f in module.validation_failures())
    return problems


def _functions_by_entry_point(module: Module, problems: list[str]) -> dict[str, list[Instance]]:
    by_entry: dict[str, list[Instance]] = {}
    for f in module.instances("google_cloudfunctions2_function"):
        entry = f.get("build_config", 0, "entry_point")
        if not isinstance(entry, str):
            problems.append(f"{f.address}: build_config.entry_point is not set ({render(entry)})")
            continue
        by_entry.setdefault(entry, []).append(f)
    return by_entry


def _invokers(module: Module) -> dict[str, set[str]]:
    """Cloud Run service / function name -> the principals allowed to invoke it."""
    out: dict[str, set[str]] = {}
    for type_, name_attr in IAM_TYPES_BY_NAME.items():
        for inst in module.instances(type_):
            if inst.get("role") not in INVOKER_ROLES:
                continue
            name = resource_name(module, inst.get(name_attr))
            members = inst.get("members") if type_.endswith("_binding") else [inst.get("member")]
            for m in members or []:
                out.setdefault(name or "?", set()).add(principal(m))
    return out


def opened_services(module: Module) -> tuple[set[str], list[str]]:
    """The services whose invoker check cloudbuild.yaml's step public-functions disables
    (output public_function_services, space-separated), and what is wrong with that output."""
    if OPENED_OUTPUT not in module.output_blocks:
        return set(), [f"no output {OPENED_OUTPUT} (cloudbuild.yaml opens the services it lists)"]
    value = module.output(OPENED_OUTPUT)
    if not isinstance(value, str):
        return set(), [f"output {OPENED_OUTPUT} is not a known string: {render(value)}"]
    return set(value.split()), []


def function_problems(co: Checkout) -> list[str]:
    """Each functions-framework target is deployed by exactly one function with that entry
    point; nothing else is deployed; workers are private (only the pusher may invoke them),
    the others public through the disabled invoker check (listed in the output cloudbuild.yaml
    opens), none through an allUsers grant; all share one source bundle; every name is a
    Cloud Run service name."""
    problems: list[str] = []
    targets = co.targets
    main = co.functions_main.relative_to(co.root)
    if not targets:
        problems.append(f"{main} defines no functions-framework target (missing file?)")
    workers = set(co.topology.workers())
    module = co.module(DEFAULT)
    by_entry = _functions_by_entry_point(module, problems)

    for target in targets:
        deployed = by_entry.get(target, [])
        if not deployed:
            kind = "worker" if target in workers else "public function"
            where = (
                "the workers come from shared/topology.yaml's push_to"
                if target in workers
                else "add it to local.public_functions in infra/functions.tf"
            )
            problems.append(
                f"{main} target {target!r} ({kind}) has no google_cloudfunctions2_function with "
                f"entry_point {target!r} in infra/: {where}"
            )
        elif len(deployed) > 1:
            problems.append(
                f"{main} target {target!r} is deployed {len(deployed)} times: "
                f"{', '.join(f.address for f in deployed)}"
            )
    for entry, deployed in sorted(by_entry.items()):
        if entry not in targets:
            problems.append(
                f"{deployed[0].address} runs entry_point {entry!r}, which {main} does not define"
            )
    for worker in sorted(workers - set(targets)):
        problems.append(f"shared/topology.yaml pushes to {worker!r}, which {main} does not define")

    functions = module.instances("google_cloudfunctions2_function")
    sources = {render(f.get("build_config", 0, "source")) for f in functions}
    if len(sources) > 1:
        problems.append(f"functions are built from {len(sources)} different sources: {sources}")
    for f in functions:
        if f.get("build_config", 0, "runtime") != "python312":
            problems.append(f"{f.address}: runtime is not python312")
        name = f.get("name")
        if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
            problems.append(
                f"{f.address}: name {render(name)} is not a Cloud Run service name (lowercase "
                f"letters, digits, hyphens): its service would be named otherwise"
            )

    invokers = _invokers(module)
    opened, output_problems = opened_services(module)
    problems.extend(output_problems)
    pushers = {
        principal(s.get("push_config", 0, "oidc_token", 0, "service_account_email"))
        for s in module.instances("google_pubsub_subscription")
        if s.get("push_config", 0) is not None
    }
    for entry, deployed in sorted(by_entry.items()):
        for f in deployed:
            members = invokers.get(str(f.get("name")), set())
            ingress = f.get("service_config", 0, "ingress_settings")
            if entry in workers:
                if f.get("name") in opened:
                    problems.append(
                        f"{f.address}: a worker is listed in output {OPENED_OUTPUT}, which "
                        f"cloudbuild.yaml opens to anyone"
                    )
                if ingress != "ALLOW_INTERNAL_ONLY":
                    problems.append(
                        f"{f.address}: worker ingress_settings is {render(ingress)}, "
                        f"not ALLOW_INTERNAL_ONLY"
                    )
                if members != pushers or len(pushers) != 1:
                    problems.append(
                        f"{f.address}: a worker's only invoker must be the push subscriptions' "
                        f"service account {sorted(pushers)}, not {sorted(members)}"
                    )
            else:
                if ingress not in (None, "ALLOW_ALL"):
                    problems.append(f"{f.address}: public function ingress is {render(ingress)}")
                if public := sorted(members & PUBLIC_MEMBERS):
                    problems.append(
                        f"{f.address}: run.invoker granted to {public}, which domain-restricted "
                        f"sharing refuses; public functions are opened by disabling the invoker "
                        f"check (output {OPENED_OUTPUT}, cloudbuild.yaml)"
                    )
                if not output_problems and f.get("name") not in opened:
                    problems.append(
                        f"{f.address}: public function missing from output {OPENED_OUTPUT}: "
                        f"its invoker check stays on and nobody can call it (it checks the "
                        f"Firebase ID token itself)"
                    )
    return problems


def pubsub_problems(co: Checkout) -> list[str]:
    """Terraform's topics and subscriptions are exactly those of shared/topology.yaml with
    their settings; each worker is fed by its push subscription (OIDC token, retry policy,
    dead-letter topic); the Pub/Sub service agent may move dead letters; the relay may make
    its own subscriptions."""
    problems: list[str] = []
    topo = co.topology
    module = co.module(DEFAULT)

    topics = {t.get("name"): t for t in module.instances("google_pubsub_topic")}
    expected_topics = set(topo.topic_names())
    for name in sorted(expected_topics - set(topics)):
        problems.append(f"topic {name!r} of shared/topology.yaml is not in infra/")
    for name in sorted(set(map(str, topics)) - expected_topics):
        problems.append(
            f"infra/ creates topic {name!r}, which shared/topology.yaml does not define"
        )

    subs = {s.get("name"): s for s in module.instances("google_pubsub_subscription")}
    expected = {s.name: s for s in topo.subscriptions() + topo.bigquery_subscriptions()}
    for name in sorted(set(expected) - set(subs)):
        problems.append(f"subscription {name!r} of shared/topology.yaml is not in infra/")
    for name in sorted(set(map(str, subs)) - set(expected)):
        if name.startswith(topo.relay_subscriptions.prefix):
            problems.append(f"infra/ creates {name!r}: relay subscriptions are made at run time")
        else:
            problems.append(
                f"infra/ creates subscription {name!r}, which shared/topology.yaml does not define"
            )

    pushers: set[str] = set()
    for name, exp in sorted(expected.items()):
        got = subs.get(name)
        if got is None:
            continue
        where = f"subscription {name!r} ({got.address})"
        if (topic := resource_name(module, got.get("topic"))) != exp.topic:
            problems.append(f"{where}: on topic {topic!r}, shared/topology.yaml says {exp.topic!r}")
        if got.get("ack_deadline_seconds") != exp.ack_deadline_seconds:
            problems.append(
                f"{where}: ack_deadline_seconds {render(got.get('ack_deadline_seconds'))}, "
                f"expected {exp.ack_deadline_seconds}"
            )
        retry = got.get("retry_policy", 0) or {}
        if (seconds(retry.get("minimum_backoff")), seconds(retry.get("maximum_backoff"))) != (
            exp.retry_policy.minimum_backoff_seconds,
            exp.retry_policy.maximum_backoff_seconds,
        ):
            problems.append(f"{where}: retry_policy {render(retry)} is not the topology's")
        if got.get("expiration_policy", 0, "ttl") != "":
            problems.append(f'{where}: needs expiration_policy {{ ttl = "" }} (never expire)')
        problems.extend(_push_problems(module, where, got, exp.push_to, pushers))
        if (exp.kind == "bigquery") != (got.get("bigquery_config", 0) is not None):
            problems.append(
                f"{where}: the topology says a {exp.kind} subscription, "
                f"bigquery_config {render(got.get('bigquery_config', 0))}"
            )
        problems.extend(_dead_letter_problems(module, where, got, exp.dead_letter_topic, exp))
        if exp.message_retention_seconds is not None and seconds(
            got.get("message_retention_duration")
        ) != float(exp.message_retention_seconds):
            problems.append(
                f"{where}: message_retention_duration "
                f"{render(got.get('message_retention_duration'))}, expected "
                f"{exp.message_retention_seconds}s"
            )

    for q in topo.work_queues:
        feeding = [
            s
            for s in subs.values()
            if (fn := function_of(module, s.get("push_config", 0, "push_endpoint"))) is not None
            and fn.get("build_config", 0, "entry_point") == q.push_to
            and resource_name(module, s.get("topic")) == q.topic
            and s.get("dead_letter_policy", 0) is not None
        ]
        if not feeding:
            problems.append(
                f"worker {q.push_to!r} has no push subscription on {q.topic!r} with a "
                f"dead-letter policy"
            )

    problems.extend(_service_agent_problems(module, co.topology))
    problems.extend(_relay_subscription_problems(module, co.topology))
    return problems


def _push_problems(
    module: Module, where: str, got: Instance, push_to: str | None, pushers: set[str]
) -> list[str]:
    push = got.get("push_config", 0)
    if push_to is None:
        return [f"{where}: a pull subscription in the topology, but it pushes"] if push else []
    if push is None:
        return [f"{where}: must push to {push_to!r}, has no push_config"]
    problems = []
    fn = function_of(module, push.get("push_endpoint"))
    entry = fn.get("build_config", 0, "entry_point") if fn is not None else None
    if entry != push_to:
        problems.append(
            f"{where}: pushes to {render(push.get('push_endpoint'))}, not to the URL of the "
            f"function with entry_point {push_to!r}"
        )
    oidc = push.get("oidc_token", [None])[0] if push.get("oidc_token") else None
    if oidc is None:
        problems.append(f"{where}: push without an OIDC token")
    else:
        pushers.add(principal(oidc.get("service_account_email")))
        if render(oidc.get("audience")) != render(push.get("push_endpoint")):
            problems.append(f"{where}: OIDC audience is not the push endpoint")
    if len(pushers) > 1:
        problems.append(f"{where}: push subscriptions use several identities: {sorted(pushers)}")
    return problems


def _dead_letter_problems(
    module: Module, where: str, got: Instance, dead_letter_topic: str | None, exp: Any
) -> list[str]:
    policy = got.get("dead_letter_policy", 0)
    if dead_letter_topic is None:
        return [f"{where}: has a dead_letter_policy the topology does not"] if policy else []
    if policy is None:
        return [f"{where}: no dead_letter_policy (topology: {dead_letter_topic!r})"]
    problems = []
    if (topic := resource_name(module, policy.get("dead_letter_topic"))) != dead_letter_topic:
        problems.append(f"{where}: dead letters go to {topic!r}, not {dead_letter_topic!r}")
    if policy.get("max_delivery_attempts") != exp.max_delivery_attempts:
        problems.append(
            f"{where}: max_delivery_attempts {render(policy.get('max_delivery_attempts'))}, "
            f"expected {exp.max_delivery_attempts}"
        )
    return problems


def _topic_grants(module: Module, role: str) -> set[tuple[str | None, str]]:
    return {
        (resource_name(module, i.get("topic")), principal(i.get("member")))
        for i in module.instances("google_pubsub_topic_iam_member")
        if i.get("role") == role
    }


def _service_agent_problems(module: Module, topo: Topology) -> list[str]:
    agents = {
        "serviceAccount:" + i.address
        for i in module.instances("google_project_service_identity")
        if i.get("service") == "pubsub.googleapis.com"
    }
    if not agents:
        return ["no google_project_service_identity for pubsub.googleapis.com (the agent)"]
    publishers = _topic_grants(module, "roles/pubsub.publisher")
    subscribers = {
        (resource_name(module, i.get("subscription")), principal(i.get("member")))
        for i in module.instances("google_pubsub_subscription_iam_member")
        if i.get("role") == "roles/pubsub.subscriber"
    }
    problems = []
    for sub in topo.subscriptions() + topo.bigquery_subscriptions():
        if sub.dead_letter_topic is None:
            continue
        if not any((sub.dead_letter_topic, a) in publishers for a in agents):
            problems.append(
                f"the Pub/Sub service agent may not publish to dead-letter topic "
                f"{sub.dead_letter_topic!r}"
            )
        if not any((sub.name, a) in subscribers for a in agents):
            problems.append(
                f"the Pub/Sub service agent may not acknowledge on {sub.name!r} (subscriber role)"
            )
    return problems


def _relay_identity(module: Module) -> str | None:
    relays = module.instances("google_cloud_run_v2_service")
    if len(relays) != 1:
        return None
    return principal(relays[0].get("template", 0, "service_account"))


def _relay_subscription_problems(module: Module, topo: Topology) -> list[str]:
    relay = _relay_identity(module)
    if relay is None:
        return ["expected exactly one google_cloud_run_v2_service (the relay)"]
    problems = []
    topic = topo.relay_subscriptions.topic
    if (topic, relay) not in _topic_grants(module, "roles/pubsub.subscriber"):
        problems.append(f"the relay may not attach subscriptions to {topic!r} (subscriber role)")
    needed = {"pubsub.subscriptions.create", "pubsub.subscriptions.delete"}
    granted: set[str] = set()
    for binding in module.instances("google_project_iam_member"):
        if principal(binding.get("member")) != relay:
            continue
        role = binding.get("role")
        if role in ("roles/pubsub.editor", "roles/pubsub.admin"):
            granted |= needed
        custom = referenced_instance(module, role, ("name", "id"))
        if custom is not None and custom.type == "google_project_iam_custom_role":
            granted |= set(custom.get("permissions") or [])
    if missing := needed - granted:
        problems.append(f"the relay's service account lacks {sorted(missing)} on the project")
    return problems


# What the Pub/Sub service agent needs on a table to write a BigQuery subscription's rows.
BIGQUERY_WRITER_ROLE = "roles/bigquery.dataEditor"
DAY_MS = 86_400_000


def bigquery_problems(co: Checkout, sc: Scenario = DEFAULT) -> list[str]:
    """Each BigQuery export of shared/topology.yaml: its table (schema from infra/schemas/,
    partitioned by the day of a TIMESTAMP column, clustered, partitions kept
    var.bigquery_retention_days, partition filter required, deletion-protected), its BigQuery
    subscription writing to exactly that table with the table's schema, the Pub/Sub service
    agent allowed to write the table, and the public functions allowed to publish the rows."""
    problems: list[str] = []
    module = co.module(sc)
    datasets = module.instances("google_bigquery_dataset")
    if len(datasets) != 1:
        return [f"expected one google_bigquery_dataset, found {len(datasets)}"]
    dataset = datasets[0]
    if dataset.get("location") != module.var("bigquery_location"):
        problems.append(f"{dataset.address}: location is not var.bigquery_location")
    tables = {t.get("table_id"): t for t in module.instances("google_bigquery_table")}
    subs = {s.get("name"): s for s in module.instances("google_pubsub_subscription")}
    agents = {
        "serviceAccount:" + i.address
        for i in module.instances("google_project_service_identity")
        if i.get("service") == "pubsub.googleapis.com"
    }
    writers = {
        (i.get("table_id"), principal(i.get("member")))
        for i in module.instances("google_bigquery_table_iam_member")
        if i.get("role") == BIGQUERY_WRITER_ROLE
    }
    publishers = _topic_grants(module, "roles/pubsub.publisher")
    retention = module.var("bigquery_retention_days")
    for export in co.topology.bigquery_exports:
        table = tables.get(export.table)
        if table is None:
            problems.append(f"no google_bigquery_table {export.table!r} for {export.topic!r}")
            continue
        where = table.address
        schema_file = co.infra / "schemas" / f"{export.table}.json"
        columns = {c["name"]: c for c in json.loads(schema_file.read_text(encoding="utf-8"))}
        schema = table.get("schema")
        if not isinstance(schema, str) or json.loads(schema) != list(columns.values()):
            problems.append(f"{where}: schema is not infra/schemas/{export.table}.json")
        if table.get("dataset_id") != dataset.get("dataset_id"):
            problems.append(f"{where}: not in dataset {dataset.get('dataset_id')!r}")
        part = table.get("time_partitioning", 0) or {}
        if part.get("type") != "DAY" or part.get("field") != export.partition_by_day:
            problems.append(
                f"{where}: time_partitioning {render(part)}, expected DAY on "
                f"{export.partition_by_day!r}"
            )
        column = columns.get(export.partition_by_day, {})
        if (column.get("type"), column.get("mode")) != ("TIMESTAMP", "REQUIRED"):
            problems.append(
                f"{where}: partition column {export.partition_by_day!r} is {column or 'absent'}, "
                f"not a REQUIRED TIMESTAMP"
            )
        if part.get("expiration_ms") != retention * DAY_MS:
            problems.append(
                f"{where}: partitions expire after {render(part.get('expiration_ms'))} ms, "
                f"not var.bigquery_retention_days ({retention} days)"
            )
        if list(table.get("clustering") or []) != list(export.cluster_by):
            problems.append(
                f"{where}: clustering {render(table.get('clustering'))}, "
                f"topology {list(export.cluster_by)}"
            )
        if missing := [c for c in export.cluster_by if c not in columns]:
            problems.append(f"{where}: clustered by {missing}, which the schema lacks")
        if table.get("require_partition_filter") is not True:
            problems.append(f"{where}: require_partition_filter must be true")
        if table.get("deletion_protection") is not True:
            problems.append(f"{where}: deletion_protection must be true")
        if not any((export.table, a) in writers for a in agents):
            problems.append(
                f"the Pub/Sub service agent may not write table {export.table!r} "
                f"({BIGQUERY_WRITER_ROLE})"
            )
        if (export.topic, "serviceAccount:google_service_account.public_functions") not in (
            publishers
        ):
            problems.append(f"the public functions may not publish to {export.topic!r}")
        sub = subs.get(export.subscription)
        if sub is None:
            continue  # pubsub_problems names it
        config = sub.get("bigquery_config", 0) or {}
        target = f"{module.var('project_id')}.{dataset.get('dataset_id')}.{export.table}"
        if config.get("table") != target:
            problems.append(
                f"{sub.address}: writes to {render(config.get('table'))}, not {target!r}"
            )
        for key, want in (
            ("use_table_schema", True),
            ("write_metadata", False),
            ("drop_unknown_fields", False),
        ):
            if config.get(key) is not want:
                problems.append(f"{sub.address}: bigquery_config.{key} must be {want}")
    return problems


def env_registry() -> dict[str, EnvVar]:
    """ENV_VARS, plus the relay's Firebase settings until shared/config.py lists them."""
    return {**RELAY_EXTRA_ENV, **ENV_VARS}


@dataclass(frozen=True)
class Service:
    workload: Workload
    address: str
    plain: frozenset[str]
    secret: frozenset[str]

    @property
    def names(self) -> frozenset[str]:
        return self.plain | self.secret


def services(co: Checkout, module: Module) -> list[Service]:
    """Every deployed service with the environment variables it gets."""
    out: list[Service] = []
    workers = set(co.topology.workers())
    for f in module.instances("google_cloudfunctions2_function"):
        env = f.get("service_config", 0, "environment_variables") or {}
        if not isinstance(env, dict):
            raise EvalError(f"{f.address}: environment_variables is not a known map")
        secret = f.get("service_config", 0, "secret_environment_variables") or []
        workload: Workload = (
            "workers" if f.get("build_config", 0, "entry_point") in workers else "public_functions"
        )
        out.append(
            Service(workload, f.address, frozenset(env), frozenset(s.get("key") for s in secret))
        )
    for r in module.instances("google_cloud_run_v2_service"):
        envs = r.get("template", 0, "containers", 0, "env") or []
        plain = frozenset(e["name"] for e in envs if "value_source" not in e)
        secret = frozenset(e["name"] for e in envs if "value_source" in e)
        out.append(Service("relay", r.address, plain, secret))
    return out


def env_problems(co: Checkout, registry: Mapping[str, EnvVar] | None = None) -> list[str]:
    """Every variable the code reads is set on each service that reads it (required ones in
    every scenario, optional ones in at least one), on no other service, and nothing
    unregistered is set. Secrets (SECRET_ENV) only as secret env refs."""
    registry = env_registry() if registry is None else registry
    problems: list[str] = []
    seen: dict[str, list[tuple[str, Service]]] = {}
    for sc in SCENARIOS:
        for svc in services(co, co.module(sc)):
            seen.setdefault(svc.address, []).append((sc.name, svc))
    for address, per_scenario in sorted(seen.items()):
        workload = per_scenario[0][1].workload
        for name, var in sorted(registry.items()):
            present = [sc for sc, svc in per_scenario if name in svc.names]
            absent = [sc for sc, svc in per_scenario if name not in svc.names]
            if workload in var.readers:
                if var.required and absent:
                    problems.append(
                        f"{address} ({workload}) must set {name} ({var.description}); "
                        f"missing with {absent}"
                    )
                elif not var.required and not present:
                    problems.append(
                        f"{address} ({workload}) reads {name} ({var.description}) but no "
                        f"scenario sets it"
                    )
            elif present:
                readers = ", ".join(sorted(var.readers))
                problems.append(f"{address} ({workload}) sets {name}, which only {readers} read")
        for scenario_name, svc in per_scenario:
            for name in sorted(svc.names - set(registry)):
                problems.append(
                    f"{address} sets {name} [{scenario_name}], which shared/config.py ENV_VARS "
                    f"does not list (a typo, or a variable to register there)"
                )
            for name in SECRET_ENV:
                if name in svc.plain:
                    problems.append(f"{address}: {name} must be a secret env ref [{scenario_name}]")
    return problems


def _secret_by_id(module: Module) -> dict[str, Instance]:
    out: dict[str, Instance] = {}
    for secret in module.instances("google_secret_manager_secret"):
        if isinstance(secret_id := secret.get("secret_id"), str):
            out[secret_id] = secret
    return out


def _secret_of(module: Module, value: Any) -> Instance | None:
    found = referenced_instance(module, value, ("id", "name", "secret_id"))
    return found if found is not None and found.type == "google_secret_manager_secret" else None


def secret_problems(co: Checkout) -> list[str]:
    """Each secret env ref of a function names a secret made here, which the function's
    service account may read (secretAccessor on that secret) and nobody else who does not
    read it; the pepper's ref is pinned to the version Terraform made; no secret version
    carries its value in a planned argument (`secret_data`): only write-only, never stored."""
    problems: list[str] = []
    for sc in SCENARIOS:
        module = co.module(sc)
        secrets = _secret_by_id(module)
        accessors: dict[str, set[str]] = {}  # secret address -> members granted access
        for grant in module.instances("google_secret_manager_secret_iam_member"):
            secret = _secret_of(module, grant.get("secret_id"))
            if grant.get("role") == SECRET_ACCESSOR and secret is not None:
                accessors.setdefault(secret.address, set()).add(principal(grant.get("member")))
        readers: dict[str, set[str]] = {}  # secret address -> service accounts reading it
        for f in module.instances("google_cloudfunctions2_function"):
            account = principal(f.get("service_config", 0, "service_account_email"))
            for ref in f.get("service_config", 0, "secret_environment_variables") or []:
                name, secret = ref.get("key"), secrets.get(ref.get("secret"))
                where = f"[{sc.name}] {f.address} secret env {name}"
                if secret is None:
                    problems.append(f"{where}: {render(ref.get('secret'))} is no secret made here")
                    continue
                readers.setdefault(secret.address, set()).add(account)
                if account not in accessors.get(secret.address, set()):
                    problems.append(
                        f"{where}: {account} has no {SECRET_ACCESSOR} on {secret.address}: the "
                        f"function cannot start"
                    )
                if name in PINNED_SECRET_ENV:
                    version = referenced_instance(module, ref.get("version"), ("version",))
                    if (
                        version is None
                        or version.type != "google_secret_manager_secret_version"
                        or _secret_of(module, version.get("secret")) is not secret
                    ):
                        problems.append(
                            f"{where}: version {render(ref.get('version'))} is not pinned to a "
                            f"version of {secret.address} made here"
                        )
        for address, members in sorted(accessors.items()):
            if extra := members - readers.get(address, set()):
                problems.append(
                    f"[{sc.name}] {SECRET_ACCESSOR} on {address} granted to {sorted(extra)}, "
                    f"whose services do not read it"
                )
        for version in module.instances("google_secret_manager_secret_version"):
            if version.get("secret_data") is not None:
                problems.append(
                    f"[{sc.name}] {version.address}: secret_data is stored in the plan and the "
                    f"state; write it through secret_data_wo"
                )
            elif version.get("secret_data_wo") is not None and not isinstance(
                version.get("secret_data_wo_version"), int
            ):
                problems.append(
                    f"[{sc.name}] {version.address}: secret_data_wo without a "
                    f"secret_data_wo_version is never written"
                )
    return sorted(set(problems))


def iam_problems(co: Checkout) -> list[str]:
    """No roles/owner or roles/editor anywhere, no authoritative project IAM, no grant to
    allUsers or allAuthenticatedUsers (organisations enforcing domain-restricted sharing
    refuse them), and one service account per workload (the pusher distinct from all of
    them)."""
    problems: list[str] = []
    for sc in SCENARIOS:
        module = co.module(sc)
        for inst in module.instances():
            if inst.type in ("google_project_iam_policy", "google_project_iam_binding"):
                problems.append(f"{inst.address}: authoritative project IAM replaces others' roles")
            if inst.type.endswith(("_iam_member", "_iam_binding")):
                role = inst.get("role")
                if role in FORBIDDEN_ROLES:
                    problems.append(f"[{sc.name}] {inst.address} grants {role}")
                members = inst.get("members") if "members" in inst.config else [inst.get("member")]
                for member in members or []:
                    if principal(member) in PUBLIC_MEMBERS:
                        problems.append(
                            f"[{sc.name}] {inst.address} grants {role} to {principal(member)}, "
                            f"which domain-restricted sharing refuses"
                        )
        identities: dict[str, set[str]] = {}
        for f in module.instances("google_cloudfunctions2_function"):
            sa = f.get("service_config", 0, "service_account_email")
            kind = (
                "workers"
                if f.get("build_config", 0, "entry_point") in co.topology.workers()
                else "public_functions"
            )
            if sa is None:
                problems.append(f"{f.address}: no service_account_email (the default account)")
            identities.setdefault(kind, set()).add(principal(sa))
        if (relay := _relay_identity(module)) is not None:
            identities.setdefault("relay", set()).add(relay)
        for kind, ids in sorted(identities.items()):
            if len(ids) != 1:
                problems.append(f"[{sc.name}] {kind} run as several accounts: {sorted(ids)}")
        flat = [i for ids in identities.values() for i in ids]
        if len(set(flat)) != len(flat):
            problems.append(f"[{sc.name}] workloads share a service account: {identities}")
        pushers = {
            principal(s.get("push_config", 0, "oidc_token", 0, "service_account_email"))
            for s in module.instances("google_pubsub_subscription")
            if s.get("push_config", 0) is not None
        }
        if pushers & set(flat):
            problems.append(f"[{sc.name}] the pusher is also a runtime account: {pushers}")
    return sorted(set(problems))


def firestore_problems(co: Checkout) -> list[str]:
    """A native-mode database, a composite index for each query that needs one, TTL on the
    expiring collection groups."""
    module = co.module(DEFAULT)
    problems: list[str] = []
    dbs = [d for d in module.instances("google_firestore_database") if d.get("name") == "(default)"]
    if len(dbs) != 1 or dbs[0].get("type") != "FIRESTORE_NATIVE":
        problems.append("expected the (default) Firestore database in FIRESTORE_NATIVE mode")
    indexes = [
        (
            i.get("collection"),
            [(f.get("field_path"), f.get("order")) for f in i.get("fields") or []],
        )
        for i in module.instances("google_firestore_index")
    ]
    for collection, equalities, ordered in COMPOSITE_QUERIES:
        if not any(
            coll == collection
            and len(fields) == len(equalities) + 1
            and {f for f, _ in fields[:-1]} == set(equalities)
            and fields[-1] == ordered
            for coll, fields in indexes
        ):
            problems.append(
                f"no composite index on {collection!r} for {' == , '.join(equalities)} == "
                f"ordered by {ordered[0]} {ordered[1]}"
            )
    ttl = {
        (f.get("collection"), f.get("field"))
        for f in module.instances("google_firestore_field")
        if f.get("ttl_config") is not None
    }
    for want in TTL_FIELDS:
        if want not in ttl:
            problems.append(f"no TTL policy on collection group {want[0]!r} field {want[1]!r}")
    exempt = {
        (f.get("collection"), f.get("field"))
        for f in module.instances("google_firestore_field")
        if f.get("index_config") == [{}] and f.get("ttl_config") is None
    }
    for want in UNINDEXED_FIELDS:
        if want not in exempt:
            problems.append(f"{want[0]!r} field {want[1]!r} keeps its single-field indexes")
    return problems


def relay_problems(co: Checkout) -> list[str]:
    """Cloud Run v2 settings the relay's WebSockets need, sizes from variables; public
    through the disabled invoker check."""
    module = co.module(DEFAULT)
    relays = module.instances("google_cloud_run_v2_service")
    if len(relays) != 1:
        return [f"expected one relay service, found {len(relays)}"]
    template = relays[0].get("template", 0) or {}
    problems = []
    if relays[0].get("invoker_iam_disabled") is not True:
        problems.append(
            "relay is not public through invoker_iam_disabled = true (DESIGN §3; an allUsers "
            "grant instead is refused under domain-restricted sharing)"
        )
    if template.get("timeout") != "3600s":
        problems.append(f"relay request timeout is {render(template.get('timeout'))}, not 3600s")
    if template.get("session_affinity") is not True:
        problems.append("relay has no session affinity")
    env = {e.get("name"): e.get("value") for e in _nested(template, "containers", 0, "env") or []}
    for var, target in RELAY_FUNCTION_URLS.items():
        fn = function_of(module, env.get(var))
        if fn is None or fn.get("build_config", 0, "entry_point") != target:
            problems.append(
                f"relay {var} is {render(env.get(var))}, not the URL of the {target} function"
            )
    for var, value, want_default in (
        ("relay_concurrency", template.get("max_instance_request_concurrency"), 1000),
        (
            "relay_min_instances",
            (template.get("scaling") or [{}])[0].get("min_instance_count"),
            None,
        ),
    ):
        if var not in module.variable_blocks:
            problems.append(f"variable {var} is missing")
            continue
        if value != module.var(var):
            problems.append(f"relay setting {render(value)} does not come from var.{var}")
        default = module.eval(module.variable_blocks[var].attributes()["default"], {})
        if want_default is not None and default != want_default:
            problems.append(f"var.{var} defaults to {default}, expected {want_default}")
    return problems


def _nested(value: Any, *path: str | int) -> Any:
    """`value[path[0]][path[1]]...` through an evaluated config, None where it stops."""
    for step in path:
        if isinstance(value, dict) and isinstance(step, str):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return None
    return value


def loadbalancer_problems(co: Checkout) -> list[str]:
    """With `domain`: /api/agents/<function> and every path below it reach each public
    function, with the prefix cut (the function sees `/` and below, as at its own URL: the
    workspaces function routes on the path), and everything else the relay, through
    serverless NEGs of type `cloud_run` (gen2 functions are Cloud Run services; a
    `cloud_function` NEG serves 1st-gen functions only) naming each one's service."""
    (sc,) = [s for s in SCENARIOS if s.variables.get("domain")]
    module = co.module(sc)
    problems: list[str] = []
    workers = set(co.topology.workers())
    public = {
        f.get("build_config", 0, "entry_point"): f
        for f in module.instances("google_cloudfunctions2_function")
        if f.get("build_config", 0, "entry_point") not in workers
    }
    relays = module.instances("google_cloud_run_v2_service")
    maps = [m for m in module.instances("google_compute_url_map") if m.get("path_matcher", 0)]
    if len(maps) != 1 or len(relays) != 1:
        return [f"[{sc.name}] expected one URL map with a path matcher and one relay service"]

    def serverless_target(service_ref: Any, where: str) -> Any:
        """The service the backend `service_ref` points at, through its serverless NEG."""
        backend = referenced_instance(module, service_ref, ("id", "self_link"))
        if backend is None or backend.type != "google_compute_backend_service":
            problems.append(f"{where}: {render(service_ref)} is not a backend service here")
            return None
        group = referenced_instance(module, backend.get("backend", 0, "group"), ("id", "self_link"))
        if group is None or group.type != "google_compute_region_network_endpoint_group":
            problems.append(f"{where}: {backend.address} has no serverless NEG as its backend")
            return None
        if group.get("network_endpoint_type") != "SERVERLESS":
            problems.append(f"{where}: {group.address} is not a SERVERLESS NEG")
        for other in ("cloud_function", "app_engine", "serverless_deployment"):
            if group.get(other, 0) is not None:
                problems.append(
                    f"{where}: {group.address} uses {other}; gen2 functions and the relay are "
                    f"Cloud Run services (cloud_run {{ service = ... }})"
                )
        return group.get("cloud_run", 0, "service")

    url_map = maps[0]
    relay_name = relays[0].get("name")
    for service_ref, where in (
        (url_map.get("default_service"), f"{url_map.address} default_service"),
        (url_map.get("path_matcher", 0, "default_service"), f"{url_map.address} path_matcher"),
    ):
        if (target := serverless_target(service_ref, where)) != relay_name:
            problems.append(f"{where} reaches {render(target)}, not the relay {relay_name!r}")
    # (match kind, path) -> the route rule that takes it
    routed: dict[tuple[str, str], dict[str, Any]] = {}
    rules = url_map.get("path_matcher", 0, "route_rules") or []
    priorities = [rule.get("priority") for rule in rules]
    if len(set(priorities)) != len(priorities):
        problems.append(f"{url_map.address}: route rules share a priority: {priorities}")
    for rule in rules:
        for match in rule.get("match_rules") or []:
            for kind in ("full_path_match", "prefix_match"):
                if isinstance(path := match.get(kind), str):
                    routed[(kind, path)] = rule
    if url_map.get("path_matcher", 0, "path_rule"):
        problems.append(
            f"{url_map.address}: path rules beside route rules (a path matcher takes one kind)"
        )
    for entry, f in sorted(public.items()):
        path = f"/api/agents/{entry}"
        found: list[dict[str, Any]] = []
        for kind, matched in (("full_path_match", path), ("prefix_match", path + "/")):
            rule = routed.get((kind, matched))
            if rule is None:
                problems.append(f"[{sc.name}] no route rule with {kind} {matched} for {f.address}")
            elif not any(rule is r for r in found):
                found.append(rule)
        for rule in found:
            target = serverless_target(rule.get("service"), f"path {path}")
            if target != f.get("name"):
                problems.append(
                    f"path {path} reaches Cloud Run service {render(target)}, not {f.address}'s "
                    f"service {render(f.get('name'))}"
                )
            rewrite = _nested(rule, "route_action", 0, "url_rewrite", 0, "path_prefix_rewrite")
            if rewrite != "/":
                problems.append(
                    f"path {path} reaches {f.address} with its prefix (path_prefix_rewrite "
                    f'{render(rewrite)}, not "/"): the function would not see its own paths'
                )
    return problems


def terraform_required_version(co: Checkout) -> str:
    for block in co.module(DEFAULT).blocks:
        if block.type == "terraform":
            value = co.module(DEFAULT).eval(block.attributes()["required_version"], {})
            return str(value)
    raise AssertionError("no terraform block")


def version_problems(co: Checkout) -> list[str]:
    """Providers pinned to exact released versions, Terraform's version bounded."""
    module = co.module(DEFAULT)
    problems: list[str] = []
    blocks = [b for b in module.blocks if b.type == "terraform"]
    if len(blocks) != 1:
        return [f"expected one terraform block, found {len(blocks)}"]
    if "required_version" not in blocks[0].attributes():
        problems.append("terraform.required_version is not set")
    required = [b for b in blocks[0].blocks() if b.type == "required_providers"]
    providers = module.eval_body(required[0].body, {}, "required_providers") if required else {}
    if not providers:
        problems.append("no required_providers")
    for name, spec in providers.items():
        version = spec.get("version") if isinstance(spec, dict) else None
        if not isinstance(version, str) or not re.fullmatch(r"=\s*\d+\.\d+\.\d+", version):
            problems.append(f"provider {name} is not pinned to one version: {render(version)}")
    return problems


def version_satisfies(version: str, constraint: str) -> bool:
    """Terraform's version constraint syntax, for plain x.y.z versions."""

    def parse(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split("."))

    have = parse(version)
    for clause in constraint.split(","):
        m = re.fullmatch(r"\s*(=|!=|>=|<=|>|<|~>)?\s*(\d+(?:\.\d+)*)\s*", clause)
        if m is None:
            raise ValueError(f"cannot read version constraint {clause!r}")
        op, want_text = m.group(1) or "=", m.group(2)
        want = parse(want_text)
        padded = want + (0,) * (3 - len(want))
        ok = {
            "=": have == padded,
            "!=": have != padded,
            ">=": have >= padded,
            "<=": have <= padded,
            ">": have > padded,
            "<": have < padded,
            "~>": have >= padded and have[: len(want) - 1] == want[: len(want) - 1],
        }[op]
        if not ok:
            return False
    return True
