"""The local stack's Cloud Scheduler: a budget tick on ``apex-budget-tick`` every
``APEX_BUDGET_TICK_S`` seconds (default 60, as the Terraform job's every minute), the same
message the job publishes (DESIGN §11)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Final

from google.api_core.exceptions import GoogleAPIError
from google.cloud.pubsub_v1 import PublisherClient

from devstack.procs import StackError
from shared.budgets.tick import TICK_TOPIC
from shared.models.budgets import BudgetTick

log = logging.getLogger("devstack.ticker")

TICK_ENV: Final = "APEX_BUDGET_TICK_S"
DEFAULT_TICK_S: Final = 60.0
MIN_TICK_S: Final = 0.5
PUBLISH_TIMEOUT_S: Final = 10.0


def tick_interval(environ: Mapping[str, str]) -> float:
    text = environ.get(TICK_ENV, str(DEFAULT_TICK_S))
    try:
        seconds = float(text)
    except ValueError as e:
        raise StackError(f"{TICK_ENV} must be a number of seconds, not {text!r}") from e
    if not MIN_TICK_S <= seconds <= 86_400:
        raise StackError(f"{TICK_ENV} must be between {MIN_TICK_S} and 86400 seconds")
    return seconds


def tick_message() -> tuple[bytes, dict[str, str]]:
    """What the scheduler publishes: a tick without a workspace (the worker fans it out)."""
    tick = BudgetTick()
    return tick.model_dump_json().encode(), tick.attributes()


class Ticker:
    """Publishes the tick on a thread until stopped. A publish that fails is logged and
    tried again at the next tick, as a scheduler's missed run would be."""

    def __init__(self, publisher: PublisherClient, project: str, interval_s: float) -> None:
        self._publisher = publisher
        self._topic = publisher.topic_path(project, TICK_TOPIC)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="budget-ticker", daemon=True)
        self.published = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=PUBLISH_TIMEOUT_S + 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            data, attributes = tick_message()
            try:
                self._publisher.publish(self._topic, data, **attributes).result(
                    timeout=PUBLISH_TIMEOUT_S
                )
            except (GoogleAPIError, TimeoutError) as e:
                log.error("the budget tick was not published: %s", e)
                continue
            self.published += 1
