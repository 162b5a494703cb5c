"""The local stack as ``make dev`` runs it, from a test's side: a stack of the test's own (every
port from the OS), a signed-up user calling its public functions, and last month's planted
usage ingested through ``usage_ingest``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from google.cloud import firestore

from devstack.auth_emulator import SignedIn
from devstack.stack import DevConfig, RunningStack, run_stack
from devstack.synthetic import SyntheticWorkspace
from shared.store.usage import FirestoreUsageStore


@contextmanager
def running_stack(project: str, state_dir: Path) -> Iterator[RunningStack]:
    """Every function, the topology and the relay on ``project``, on ports from the OS (the
    emulators are the session's, which the *_EMULATOR_HOST variables name)."""
    environ = {**os.environ, "GOOGLE_CLOUD_PROJECT": project}
    with run_stack(DevConfig.with_os_ports(project, state_dir), environ, demo_data=False) as stack:
        yield stack


@dataclass(frozen=True)
class Caller:
    """A signed-up user calling the stack's functions."""

    user: SignedIn
    workspace: str
    functions: dict[str, str]

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.user.id_token}",
            "X-Apex-Workspace": self.workspace,
            **extra,
        }

    def post(self, function: str, body: object) -> httpx.Response:
        return httpx.post(self.functions[function], json=body, headers=self.headers(), timeout=90)

    def get(self, function: str, **params: str | int) -> httpx.Response:
        return httpx.get(
            self.functions[function], params=params, headers=self.headers(), timeout=30
        )


def last_month() -> tuple[date, int]:
    """The previous calendar month: its last day and its length ("last month" in triage)."""
    first_of_this = datetime.now(UTC).date().replace(day=1)
    end = first_of_this - timedelta(days=1)
    return end, end.day


def ingest(caller: Caller, db: firestore.Client, workspace: SyntheticWorkspace) -> None:
    """Post ``workspace``'s raw records to ``usage_ingest`` and wait until the aggregator
    has applied every one."""
    raw = workspace.raw
    for start in range(0, len(raw), 5000):
        response = caller.post("usage_ingest", raw[start : start + 5000])
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": len(raw[start : start + 5000]), "rejected": []}
    store = FirestoreUsageStore(db)
    deadline = time.monotonic() + 120
    while store.catalogue(caller.workspace).records < len(raw):
        assert time.monotonic() < deadline, "the aggregator did not apply every record"
        time.sleep(0.25)
    assert store.catalogue(caller.workspace).records == len(raw)
