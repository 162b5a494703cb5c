"""The process's dependencies, built once from settings at start-up (a cold start).

Built eagerly: a missing setting or an unreachable emulator host fails the first request
(and the process log) with a clear message instead of half-working.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass

import firebase_admin
from google.cloud import firestore

from shared import logging as apex_logging
from shared.access import Access
from shared.agents.pipeline import Pipeline
from shared.answer import make_writer
from shared.auth import TokenVerifier
from shared.bus import Bus
from shared.chat import Submitter
from shared.config import Settings
from shared.store.budget_interface import BudgetStore
from shared.store.budgets import FirestoreBudgetStore
from shared.store.dedup import FirestoreDedupStore
from shared.store.interfaces import (
    DedupStore,
    RateLimiter,
    RunStore,
    Storage,
    ThreadStore,
    UsageStore,
    WorkspaceStore,
)
from shared.store.ratelimit import FirestoreRateLimiter
from shared.store.runs import FirestoreRunStore
from shared.store.storage import FirestoreStorage
from shared.store.threads import FirestoreThreadStore
from shared.store.usage import FirestoreUsageStore
from shared.store.workspaces import FirestoreWorkspaceStore


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    verifier: TokenVerifier
    access: Access
    workspaces: WorkspaceStore
    storage: Storage
    runs: RunStore
    threads: ThreadStore
    usage: UsageStore
    dedup: DedupStore
    limiter: RateLimiter
    budgets: BudgetStore
    bus: Bus
    pipeline: Pipeline
    submitter: Submitter

    @classmethod
    def build(cls, settings: Settings) -> Services:
        # The one place that knows the stores are Firestore: everything else sees protocols.
        db = firestore.Client(project=settings.project)
        bus = Bus(Bus.publisher(), settings.project)
        storage = FirestoreStorage(db)
        runs, threads = FirestoreRunStore(db), FirestoreThreadStore(db)
        usage, dedup = FirestoreUsageStore(db), FirestoreDedupStore(db)
        # Unique per build: settings that differ only in limits share a project.
        app = firebase_admin.initialize_app(
            options={"projectId": settings.project},
            name=f"apex-{settings.project}-{uuid.uuid4().hex[:8]}",
        )
        verifier = TokenVerifier(app)
        workspaces = FirestoreWorkspaceStore(db)
        return cls(
            settings=settings,
            verifier=verifier,
            access=Access(settings, verifier, workspaces),
            workspaces=workspaces,
            storage=storage,
            runs=runs,
            threads=threads,
            usage=usage,
            dedup=dedup,
            limiter=FirestoreRateLimiter(db),
            budgets=FirestoreBudgetStore(db),
            bus=bus,
            pipeline=Pipeline(
                storage,
                runs,
                threads,
                usage,
                bus,
                make_writer(settings, settings.project),
                workspaces=workspaces,
            ),
            submitter=Submitter(storage, runs, threads, dedup, bus),
        )


_built: dict[Settings, Services] = {}
_building = threading.Lock()


def services() -> Services:
    """The services for the current settings (built once per distinct settings: a process
    has one; a test suite that switches projects gets one per project). Concurrent first
    requests (a cold start under load) build them once."""
    settings = Settings.from_env(os.environ)
    found = _built.get(settings)
    if found is not None:
        return found
    with _building:
        if settings not in _built:
            apex_logging.configure(settings.project)
            _built[settings] = Services.build(settings)
        return _built[settings]
