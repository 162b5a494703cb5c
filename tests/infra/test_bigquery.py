"""The raw-records export (DESIGN §10): the BigQuery table's schema against the row model it
is derived from, and the Terraform of the export against shared/topology.yaml, with the drift
each check catches (a copy of the tree changed in one place, conftest.make_checkout).

No BigQuery runs here: these checks and the row test in
tests/functions/test_bigquery_rows.py are what prove the export."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from infra import bq_schema
from shared.ingest.rows import COLUMN_DESCRIPTIONS, RecordRow
from shared.models.usage import UsageRecord
from shared.topology import load_topology
from tests.infra import checks
from tests.infra.checks import ROOT, Checkout
from tests.infra.conftest import MakeCheckout, edit

# --- the schema file against the model --------------------------------------------------------


def test_the_committed_schema_is_what_the_script_derives_from_the_row_model_now() -> None:
    for table in bq_schema.TABLES:
        committed = bq_schema.schema_path(table).read_text(encoding="utf-8")
        assert committed == bq_schema.schema_text(table), (
            f"infra/schemas/{table}.json is stale: run python -m infra.bq_schema"
        )
    assert bq_schema.main(["--check"]) == 0


def test_the_check_mode_reports_a_stale_schema(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bq_schema, "SCHEMA_DIR", tmp_path)
    assert bq_schema.main(["--check"]) == 1  # no file at all
    assert bq_schema.main([]) == 0
    assert bq_schema.main(["--check"]) == 0
    path = tmp_path / "usage_records.json"
    columns = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(columns[:-1], indent=2) + "\n", encoding="utf-8")
    assert bq_schema.main(["--check"]) == 1
    assert "usage_records.json is stale" in capsys.readouterr().err


def test_every_record_field_is_a_column_and_the_row_adds_workspace_cost_and_acceptance() -> None:
    columns = {c["name"]: c for c in json.loads(bq_schema.schema_text("usage_records"))}
    assert set(UsageRecord.model_fields) <= set(columns)
    assert set(columns) - set(UsageRecord.model_fields) == {
        "workspace_id",
        "cost_usd",
        "ingested_at",
        "ingested_by",
    }
    assert list(columns) == list(RecordRow.model_fields)
    # Each field's type, and nullability exactly where the model admits None.
    assert {name: (c["type"], c["mode"]) for name, c in columns.items()} == {
        "ts": ("TIMESTAMP", "REQUIRED"),
        "provider": ("STRING", "NULLABLE"),
        "model": ("STRING", "REQUIRED"),
        "feature": ("STRING", "NULLABLE"),
        "user": ("STRING", "NULLABLE"),
        "status": ("STRING", "REQUIRED"),
        "error_type": ("STRING", "NULLABLE"),
        "operation": ("STRING", "NULLABLE"),
        "requests": ("INTEGER", "REQUIRED"),
        "input_tokens": ("INTEGER", "REQUIRED"),
        "cached_input_tokens": ("INTEGER", "REQUIRED"),
        "output_tokens": ("INTEGER", "REQUIRED"),
        "latency_ms": ("FLOAT", "NULLABLE"),
        "request_hash": ("STRING", "NULLABLE"),
        "batch": ("BOOLEAN", "REQUIRED"),
        "prompt_prefix_hash": ("STRING", "NULLABLE"),
        "record_id": ("STRING", "REQUIRED"),
        "workspace_id": ("STRING", "REQUIRED"),
        "cost_usd": ("NUMERIC", "NULLABLE"),
        "ingested_at": ("TIMESTAMP", "REQUIRED"),
        "ingested_by": ("STRING", "REQUIRED"),
    }
    for name, column in columns.items():
        assert column["description"] == COLUMN_DESCRIPTIONS[name]


class _Probe(BaseModel):
    flag: bool
    count: int
    ratio: float | None
    when: datetime
    money: Decimal
    state: Literal["a", "b"]


def test_column_types_follow_the_annotations_exactly() -> None:
    descriptions = {name: name for name in _Probe.model_fields}
    assert [(c["type"], c["mode"]) for c in bq_schema.table_schema(_Probe, descriptions)] == [
        ("BOOLEAN", "REQUIRED"),  # not INTEGER, though bool is an int in Python
        ("INTEGER", "REQUIRED"),
        ("FLOAT", "NULLABLE"),
        ("TIMESTAMP", "REQUIRED"),
        ("NUMERIC", "REQUIRED"),
        ("STRING", "REQUIRED"),
    ]


class _Unmapped(BaseModel):
    tags: list[str]


class _Mixed(BaseModel):
    value: int | str


def test_a_field_without_a_column_type_or_a_description_stops_the_script() -> None:
    with pytest.raises(bq_schema.SchemaError, match=r"_Unmapped\.tags: no BigQuery column type"):
        bq_schema.table_schema(_Unmapped, {"tags": "t"})
    with pytest.raises(bq_schema.SchemaError, match=r"_Mixed\.value: a union"):
        bq_schema.table_schema(_Mixed, {"value": "v"})
    with pytest.raises(bq_schema.SchemaError, match=r"_Probe\.flag has no column description"):
        bq_schema.table_schema(_Probe, {})
    described = {name: name for name in _Probe.model_fields} | {"gone": "a removed field"}
    with pytest.raises(bq_schema.SchemaError, match=r"descriptions of no field.*'gone'"):
        bq_schema.table_schema(_Probe, described)


# --- Terraform against the topology -----------------------------------------------------------


def test_the_export_is_in_the_topology_and_local_stack_only_has_its_topics() -> None:
    topology = load_topology()
    (export,) = topology.bigquery_exports
    assert (export.topic, export.table, export.partition_by_day) == (
        "apex-records",
        "usage_records",
        "ts",
    )
    assert export.cluster_by == ("workspace_id",)
    assert {"apex-records", "apex-records-dlq"} <= set(topology.topic_names())
    local = {s.name: s for s in topology.subscriptions()}
    assert export.subscription not in local  # no BigQuery locally
    assert local["apex-records-dlq-keep"].kind == "pull"
    (bigquery,) = topology.bigquery_subscriptions()
    assert (bigquery.kind, bigquery.bigquery_table, bigquery.dead_letter_topic) == (
        "bigquery",
        "usage_records",
        "apex-records-dlq",
    )


@pytest.mark.parametrize("scenario", checks.SCENARIOS, ids=lambda sc: sc.name)
def test_the_terraform_export_is_the_topology_s(scenario: checks.Scenario) -> None:
    assert checks.bigquery_problems(Checkout(ROOT), scenario) == []


def test_the_retention_variable_sets_the_partition_expiration(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(
        co.infra / "apex.tfvars.example",
        "bigquery_retention_days = 400",
        "bigquery_retention_days = 30",
    )
    (table,) = co.module().instances("google_bigquery_table")
    assert table.get("time_partitioning", 0, "expiration_ms") == 30 * 86_400_000
    assert checks.bigquery_problems(co) == []


@pytest.mark.parametrize("days", ["0", "1.5", "3651"])
def test_a_retention_outside_whole_days_1_to_3650_is_refused(
    make_checkout: MakeCheckout, days: str
) -> None:
    co = make_checkout()
    edit(
        co.infra / "apex.tfvars.example",
        "bigquery_retention_days = 400",
        f"bigquery_retention_days = {days}",
    )
    assert (
        f"[apex.tfvars.example] var.bigquery_retention_days = {days}: fails its validation"
        in checks.plan_problems(co)
    )


@pytest.mark.parametrize(
    ("file", "old", "new", "named"),
    [
        (
            "bigquery.tf",
            'schema      = file("${path.module}/schemas/${each.key}.json")',
            'schema      = "[]"',
            "schema is not infra/schemas/usage_records.json",
        ),
        (
            "bigquery.tf",
            "field         = each.value.partition_by_day",
            'field         = "ingested_at"',
            "expected DAY on 'ts'",
        ),
        (
            "bigquery.tf",
            "expiration_ms = var.bigquery_retention_days * 86400000",
            "expiration_ms = null",
            "not var.bigquery_retention_days (400 days)",
        ),
        (
            "bigquery.tf",
            "clustering = each.value.cluster_by",
            'clustering = ["model"]',
            "clustering",
        ),
        (
            "bigquery.tf",
            "require_partition_filter = true",
            "require_partition_filter = false",
            "require_partition_filter must be true",
        ),
        (
            "bigquery.tf",
            "deletion_protection = true",
            "deletion_protection = false",
            "deletion_protection must be true",
        ),
        (
            "bigquery.tf",
            'bigquery_writer_roles = ["roles/bigquery.dataEditor", ',
            "bigquery_writer_roles = [",
            "the Pub/Sub service agent may not write table 'usage_records'",
        ),
        (
            "bigquery.tf",
            "    use_table_schema = true",
            "    use_table_schema = false",
            "bigquery_config.use_table_schema must be True",
        ),
        (
            "bigquery.tf",
            "    drop_unknown_fields = false",
            "    drop_unknown_fields = true",
            "bigquery_config.drop_unknown_fields must be False",
        ),
        (
            "bigquery.tf",
            '.${google_bigquery_table.export[each.value.table].table_id}"',
            '.other"',
            "not 'my-apex-project.apex.usage_records'",
        ),
        (
            "iam.tf",
            '"apex-usage", "apex-records", "apex-events"]',
            '"apex-usage", "apex-events"]',
            "the public functions may not publish to 'apex-records'",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_each_drift_of_the_export_is_named(
    make_checkout: MakeCheckout, file: str, old: str, new: str, named: str
) -> None:
    co = make_checkout()
    edit(co.infra / file, old, new)
    problems = checks.bigquery_problems(co)
    assert any(named in p for p in problems), problems


def test_a_partition_column_the_schema_lacks_is_named(make_checkout: MakeCheckout) -> None:
    co = make_checkout()
    edit(co.root / "shared" / "topology.yaml", "partition_by_day: ts", "partition_by_day: day")
    problems = checks.bigquery_problems(co)
    assert any("partition column 'day' is absent" in p for p in problems), problems


def test_the_bigquery_subscription_is_checked_with_the_other_subscriptions(
    make_checkout: MakeCheckout,
) -> None:
    co = make_checkout()
    edit(
        co.infra / "bigquery.tf",
        'dead_letter_topic     = google_pubsub_topic.topic["${each.value.topic}-dlq"].id',
        'dead_letter_topic     = google_pubsub_topic.topic["apex-usage-dlq"].id',
    )
    edit(
        co.infra / "bigquery.tf",
        '  topic  = google_pubsub_topic.topic["${each.value.topic}-dlq"].name\n'
        '  role   = "roles/pubsub.publisher"',
        '  topic  = google_pubsub_topic.topic["apex-usage-dlq"].name\n'
        '  role   = "roles/pubsub.publisher"',
    )
    problems = checks.pubsub_problems(co)
    assert any(
        "'apex-records-bigquery'" in p and "dead letters go to 'apex-usage-dlq'" in p
        for p in problems
    ), problems
    assert (
        "the Pub/Sub service agent may not publish to dead-letter topic 'apex-records-dlq'"
        in problems
    )


def test_a_bigquery_subscription_missing_from_terraform_is_named(
    make_checkout: MakeCheckout,
) -> None:
    co = make_checkout()
    edit(
        co.infra / "bigquery.tf",
        "  bigquery_subscriptions = { for e in local.bigquery_exports : e.subscription => e }",
        "  bigquery_subscriptions = {}",
    )
    problems = checks.pubsub_problems(co)
    assert "subscription 'apex-records-bigquery' of shared/topology.yaml is not in infra/" in (
        problems
    )


def test_a_push_subscription_in_place_of_the_bigquery_one_is_named(
    make_checkout: MakeCheckout,
) -> None:
    co = make_checkout()
    edit(
        co.infra / "bigquery.tf",
        "  bigquery_config {\n",
        '  dynamic "bigquery_config" {\n    for_each = []\n    content {\n',
    )
    edit(
        co.infra / "bigquery.tf",
        "    drop_unknown_fields = false\n  }\n",
        "    drop_unknown_fields = false\n    }\n  }\n",
    )
    problems = checks.pubsub_problems(co)
    assert any(
        "'apex-records-bigquery'" in p and "says a bigquery subscription" in p for p in problems
    ), problems


def test_the_user_docs_list_every_column_with_its_type() -> None:
    docs = (ROOT / "docs" / "bigquery.md").read_text(encoding="utf-8")
    listed = {}
    for line in docs.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            listed[cells[0].strip("`")] = cells[1].removesuffix(", nullable")
    columns = json.loads(bq_schema.schema_text("usage_records"))
    assert listed == {c["name"]: c["type"] for c in columns}
    nullable = {c["name"] for c in columns if c["mode"] == "NULLABLE"}
    for line in docs.splitlines():
        if line.startswith("| `"):
            name = line.split("`")[1]
            assert (", nullable" in line) == (name in nullable), name
