"""tfeval, the evaluator the infra checks stand on: what it computes, and that it refuses
(rather than guesses) what Terraform would refuse or what it does not support."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.tfeval import EvalError, Module, Unknown, referenced_instance


def module(tmp_path: Path, hcl: str, **variables: Any) -> Module:
    (tmp_path / "main.tf").write_text(hcl, encoding="utf-8")
    return Module(tmp_path, variables)


def test_locals_for_expressions_and_functions(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("queues:\n  - {name: a, to: x}\n  - {name: b, to: y, n: 3}\n")
    m = module(
        tmp_path,
        """
        variable "suffix" { default = "-dlq" }
        locals {
          t      = yamldecode(file("${path.module}/t.yaml"))
          names  = [for q in local.t.queues : "${q.name}${var.suffix}"]
          by     = { for q in local.t.queues : q.name => try(q.n, 1) }
          group  = { for q in local.t.queues : q.to => q.name... }
          merged = merge([for k, v in local.by : { "${k}-${v}" = v > 1 ? "many" : "one" }]...)
          text   = "a $${b} \\"c\\" ${join(",", sort(keys(local.by)))}"
          nums   = max([for v in values(local.by) : v * 2]...)
          only   = [for q in local.t.queues : q.name if q.to != "x"]
          heredoc = <<-EOT
            hello
              world
          EOT
        }
        """,
    )
    assert m.local("names") == ["a-dlq", "b-dlq"]
    assert m.local("by") == {"a": 1, "b": 3}
    assert m.local("group") == {"x": ["a"], "y": ["b"]}
    assert m.local("merged") == {"a-1": "one", "b-3": "many"}
    assert m.local("text") == 'a ${b} "c" a,b'
    assert m.local("nums") == 6
    assert m.local("only") == ["b"]
    assert m.local("heredoc") == "hello\n  world\n"


def test_variables_from_defaults_tfvars_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "x.tfvars").write_text('a = "from-file"\nb = ["x"]\n')
    (tmp_path / "main.tf").write_text(
        'variable "a" {}\nvariable "b" { default = [] }\nvariable "c" { default = 1 }\n'
    )
    m = Module(tmp_path, {"c": 2}, tfvars=tmp_path / "x.tfvars")
    assert (m.var("a"), m.var("b"), m.var("c")) == ("from-file", ["x"], 2)
    with pytest.raises(EvalError, match="undeclared variables"):
        Module(tmp_path, {"nope": 1})
    with pytest.raises(EvalError, match="no default"):
        Module(tmp_path).var("a")


def test_resources_expand_and_unknowns_remember_their_origin(tmp_path: Path) -> None:
    m = module(
        tmp_path,
        """
        resource "google_pubsub_topic" "t" {
          for_each = toset(["b", "a"])
          name     = each.key
        }
        resource "google_service_account" "sa" { account_id = "x" }
        resource "google_pubsub_subscription" "s" {
          count = 2
          name  = "s${count.index}"
          topic = google_pubsub_topic.t["a"].id
          push_config {
            push_endpoint = "https://x"
            oidc_token { service_account_email = google_service_account.sa.email }
          }
          dynamic "label" {
            for_each = { k1 = "v1", k2 = "v2" }
            content {
              key   = label.key
              value = "${label.value}-${google_pubsub_topic.t[label.key == "k1" ? "a" : "b"].name}"
            }
          }
        }
        """,
    )
    topics = m.instances("google_pubsub_topic")
    assert [t.address for t in topics] == [
        'google_pubsub_topic.t["a"]',
        'google_pubsub_topic.t["b"]',
    ]
    s0, s1 = m.instances("google_pubsub_subscription")
    assert (s0.get("name"), s1.get("name")) == ("s0", "s1")
    topic = s0.get("topic")
    assert topic == Unknown.of_ref('google_pubsub_topic.t["a"].id')
    assert referenced_instance(m, topic, ("id",)) is topics[0]
    email = s0.get("push_config", 0, "oidc_token", 0, "service_account_email")
    assert str(email) == "${google_service_account.sa.email}"
    assert s0.get("label") == [{"key": "k1", "value": "v1-a"}, {"key": "k2", "value": "v2-b"}]
    # A config attribute of another resource is known; a computed one is not.
    assert m.instances("google_service_account")[0].attr("account_id") == "x"


def test_templates_over_unknowns_stay_unknown(tmp_path: Path) -> None:
    m = module(
        tmp_path,
        """
        resource "google_service_account" "sa" { account_id = "x" }
        locals {
          member = "serviceAccount:${google_service_account.sa.email}"
          joined = join(",", [google_service_account.sa.email])
          same   = "${google_service_account.sa.email}"
        }
        """,
    )
    assert m.local("member") == Unknown("serviceAccount:${google_service_account.sa.email}")
    assert isinstance(m.local("joined"), Unknown)
    assert m.local("same") == Unknown.of_ref("google_service_account.sa.email")


@pytest.mark.parametrize(
    ("hcl", "message"),
    [
        ("locals { a = local.b }", "local.b is not defined"),
        ('locals { a = { for x in ["k", "k"] : x => 1 } }', "duplicate key 'k'"),
        ('locals { a = { k = 1 }["j"] }', "no key 'j'"),
        ("locals { a = nosuchfn(1) }", "function nosuchfn() is not supported"),
        ("locals { a = local.a }", "depends on itself"),
        ('locals { a = "%{ if true }x%{ endif }" }', "template directives"),
        ('locals { a = 1 + "x" }', 'expected a number, got "x"'),
    ],
)
def test_what_terraform_refuses_is_refused(tmp_path: Path, hcl: str, message: str) -> None:
    m = module(tmp_path, hcl)
    with pytest.raises(EvalError, match=re.escape(message)):
        m.local("a")


def test_for_each_needs_keys_known_at_plan_time(tmp_path: Path) -> None:
    m = module(
        tmp_path,
        """
        resource "google_service_account" "sa" { account_id = "x" }
        resource "google_project_iam_member" "by_value" {
          for_each = { a = google_service_account.sa.email }
          member   = each.value
        }
        locals { missing = google_project_iam_member.by_value["nope"].member }
        resource "google_project_iam_member" "by_key" {
          for_each = toset([google_service_account.sa.email])
          member   = each.key
        }
        """,
    )
    assert m.group("resource", "google_project_iam_member", "by_value").instances
    with pytest.raises(EvalError, match=re.escape('by_value has no instance ["nope"]')):
        m.local("missing")
    with pytest.raises(EvalError, match="for_each is known only after apply"):
        m.group("resource", "google_project_iam_member", "by_key")


def test_variable_validations_are_evaluated(tmp_path: Path) -> None:
    hcl = """
        variable "origins" {
          default = []
          validation {
            condition     = alltrue([for o in var.origins : can(regex("^https?://[^/]+$", o))])
            error_message = "x"
          }
        }
    """
    assert module(tmp_path, hcl, origins=["https://a.example"]).validation_failures() == []
    failures = module(tmp_path, hcl, origins=["https://a.example/path"]).validation_failures()
    assert failures == ['var.origins = ["https://a.example/path"]: fails its validation']


def test_ephemeral_values_reach_only_write_only_arguments(tmp_path: Path) -> None:
    """As Terraform 1.11: an ephemeral resource's value is never planned or stored, so only a
    write-only argument (`*_wo`) may take it; anywhere else, or in an output, is an error."""
    hcl = """
        ephemeral "random_password" "p" {
          length  = 64
          special = false
        }
        resource "google_secret_manager_secret_version" "v" {
          secret                 = "s"
          secret_data_wo         = ephemeral.random_password.p.result
          secret_data_wo_version = 1
        }
        locals { through_a_local = "x-${ephemeral.random_password.p.result}" }
        resource "google_secret_manager_secret_version" "stored" {
          secret      = "s"
          secret_data = local.through_a_local
        }
        output "leaked" { value = ephemeral.random_password.p.result }
    """
    m = module(tmp_path, hcl)
    (p,) = m.instances(mode="ephemeral")
    assert (p.address, p.get("length")) == ("ephemeral.random_password.p", 64)
    v = m.group("resource", "google_secret_manager_secret_version", "v").instances[None]
    data = v.get("secret_data_wo")
    assert data == Unknown.of_ref("ephemeral.random_password.p.result")
    assert referenced_instance(m, data, ("result",)) is p
    stored = m.group("resource", "google_secret_manager_secret_version", "stored").instances[None]
    with pytest.raises(EvalError, match=r"stored\.secret_data: .* is ephemeral"):
        _ = stored.config
    with pytest.raises(EvalError, match=r"output\.leaked\.value: .* is ephemeral"):
        m.output("leaked")
    with pytest.raises(EvalError, match="no ephemeral resource of type random_string"):
        module(tmp_path, "locals { a = ephemeral.random_string.x.result }").local("a")
