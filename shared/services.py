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
from shared.agents.pipeline import Pipeline
from shared.answer import make_writer
from shared.auth import TokenVerifier
from shared.bus import Bus
from shared.chat import Submitter
from shared.config import Settings
from shared.store.dedup import DedupStore
from shared.store.ratelimit import RateLimiter
from shared.store.runs import RunStore
from shared.store.threads import ThreadStore
from shared.store.usage import UsageStore


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    verifier: TokenVerifier
    runs: RunStore
    threads: ThreadStore
    usage: UsageStore
    dedup: DedupStore
    limiter: RateLimiter
    bus: Bus
    pipeline: Pipeline
    submitter: Submitter

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = firestore.Client(project=settings.project)
        bus = Bus(Bus.publisher(), settings.project)
        runs, threads, usage = RunStore(db), ThreadStore(db), UsageStore(db)
        dedup = DedupStore(db)
        # Unique per build: settings that differ only in limits share a project.
        app = firebase_admin.initialize_app(
            options={"projectId": settings.project},
            name=f"apex-{settings.project}-{uuid.uuid4().hex[:8]}",
        )
        return cls(
            settings=settings,
            verifier=TokenVerifier(app),
            runs=runs,
            threads=threads,
            usage=usage,
            dedup=dedup,
            limiter=RateLimiter(db),
            bus=bus,
            pipeline=Pipeline(runs, threads, usage, bus, make_writer(settings, settings.project)),
            submitter=Submitter(runs, threads, dedup, bus),
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
