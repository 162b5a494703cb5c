"""What every benchmark shares: a local environment on the emulators, percentiles, the
printed table and the JSON written to ``bench/results/``."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.cloud import firestore
from google.cloud.pubsub_v1 import PublisherClient

from devstack.auth_emulator import AuthEmulator, SignedIn
from devstack.emulators import EmulatorHosts, EmulatorPorts, Emulators
from devstack.teams import join
from shared.store.workspaces import FirestoreWorkspaceStore
from shared.topology import load_topology

RESULTS = Path(__file__).with_name("results")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1), nearest-rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[index]


def summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def report(
    name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], extra: dict[str, Any]
) -> Path:
    """Print the table and write ``bench/results/{name}.json``."""
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    line = "  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True))
    print(f"\n{name}\n{line}\n{'  '.join('-' * w for w in widths)}")
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "columns": list(columns),
        "rows": [list(r) for r in rows],
        **extra,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"→ {path.relative_to(RESULTS.parent.parent)}")
    return path


@contextmanager
def emulators(project: str) -> Iterator[EmulatorHosts]:
    """The emulators on free ports, with this process's clients pointed at them."""
    with (
        tempfile.TemporaryDirectory() as work,
        Emulators(Path(work), EmulatorPorts.ephemeral(), project, dict(os.environ)) as hosts,
    ):
        os.environ.update(hosts.env())
        os.environ["GOOGLE_CLOUD_PROJECT"] = project
        yield hosts


def new_user(hosts: EmulatorHosts, project: str, workspace: str) -> SignedIn:
    """A new user, a member of ``workspace`` (DESIGN §9: membership is data)."""
    with AuthEmulator(hosts.auth, project) as auth:
        email = f"bench-{uuid.uuid4().hex[:8]}@apex.test"
        user = auth.sign_up(email, "pw-bench-123")
    join_workspace(project, workspace, user.uid, email)
    return user


def join_workspace(project: str, workspace: str, uid: str, email: str) -> None:
    db = firestore.Client(project=project)
    try:
        join(FirestoreWorkspaceStore(db), workspace, uid, email, "member")
    finally:
        db.close()


def create_topics(project: str) -> None:
    """Every topic of the topology on the Pub/Sub emulator (what a function publishes to)."""
    publisher = PublisherClient()
    for topic in load_topology().topics:
        publisher.create_topic(name=publisher.topic_path(project, topic.name))
