"""The process's dependencies, built once from settings at start-up (a cold start).

Built eagerly: a missing setting or an unreachable emulator host fails the first request
(and the process log) with a clear message instead of half-working.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import firebase_admin
from google.cloud import firestore
from google.cloud.pubsub_v1 import PublisherClient

from shared import logging as apex_logging
from shared.agents.pipeline import Pipeline
from shared.agents.submit import Submitter
from shared.answer import make_writer
from shared.auth import TokenVerifier
from shared.bus import Bus
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
        bus = Bus(PublisherClient(), settings.project)
        runs, threads, usage = RunStore(db), ThreadStore(db), UsageStore(db)
        dedup = DedupStore(db)
        app = firebase_admin.initialize_app(
            options={"projectId": settings.project}, name=f"apex-{settings.project}"
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


def services() -> Services:
    """The services for the current settings (built once per distinct settings: a process
    has one; a test suite that switches projects gets one per project)."""
    return _services_for(Settings.from_env(os.environ))


@cache
def _services_for(settings: Settings) -> Services:
    apex_logging.configure(settings.project)
    return Services.build(settings)
