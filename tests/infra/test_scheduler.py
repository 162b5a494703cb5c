"""The budget tick in Terraform (infra/scheduler.tf, DESIGN §11): one Cloud Scheduler job,
every minute in UTC, publishing on the topology's apex-budget-tick topic the very message the
local stack's ticker publishes (devstack/ticker.py), which budget_worker reads; the workers
may publish what the tick and delivery publish."""

from __future__ import annotations

import base64
import json

import pytest

from devstack.ticker import tick_message
from shared.models.budgets import BudgetTick
from tests.infra import checks
from tests.infra.checks import ROOT, Checkout, principal, resource_name


@pytest.fixture(scope="module")
def repo() -> Checkout:
    return Checkout(ROOT)


def test_one_job_ticks_every_minute_on_the_budget_tick_topic(repo: Checkout) -> None:
    module = repo.module()
    (job,) = module.instances("google_cloud_scheduler_job")
    assert job.get("schedule") == "* * * * *"
    assert job.get("time_zone") == "Etc/UTC"
    assert job.get("retry_config", 0, "retry_count") == 0
    topic = resource_name(module, job.get("pubsub_target", 0, "topic_name"))
    assert topic == "apex-budget-tick"
    (queue,) = [q for q in repo.topology.work_queues if q.topic == topic]
    assert queue.push_to == "budget_worker"
    assert "budget_worker" in repo.targets


def test_the_job_publishes_what_the_local_ticker_publishes(repo: Checkout) -> None:
    (job,) = repo.module().instances("google_cloud_scheduler_job")
    data = base64.b64decode(job.get("pubsub_target", 0, "data"))
    attributes = job.get("pubsub_target", 0, "attributes")
    local_data, local_attributes = tick_message()
    assert BudgetTick.model_validate_json(data) == BudgetTick.model_validate_json(local_data)
    assert json.loads(data) == {"kind": "budget_tick"}
    assert attributes == local_attributes == {"kind": "budget_tick"}


def test_the_scheduler_api_is_enabled_and_the_workers_publish_the_budget_topics(
    repo: Checkout,
) -> None:
    module = repo.module()
    services = {i.get("service") for i in module.instances("google_project_service")}
    assert "cloudscheduler.googleapis.com" in services
    grants = {
        (resource_name(module, i.get("topic")), principal(i.get("member")))
        for i in module.instances("google_pubsub_topic_iam_member")
        if i.get("role") == "roles/pubsub.publisher"
    }
    workers = "serviceAccount:google_service_account.workers"
    for topic in ("apex-budget-tick", "apex-notify", "apex-events"):
        assert (topic, workers) in grants
    # ...and no other workload publishes ticks or delivery requests.
    assert {who for topic, who in grants if topic in ("apex-budget-tick", "apex-notify")} == {
        workers
    }
    assert checks.plan_problems(repo) == []
