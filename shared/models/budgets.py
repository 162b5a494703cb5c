"""Budgets, notifications and their messages (DESIGN §11): the requests and responses of
the ``workspaces`` function's budget paths, what the budget store keeps, and the Pub/Sub
messages of the tick and of delivery.

Requests forbid unknown fields (an unknown scope field is a 422 naming it) and bound every
size. Money is USD in floats on the wire (``monthly_usd`` in (0, 1e9]); thresholds are
fractions of the monthly amount in (0, 10] with at most four decimals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    model_validator,
)

from shared.models.events import iso_utc
from shared.models.messages import ID_PATTERN
from shared.models.usage import Name as DimensionName
from shared.models.usage import ProviderId
from shared.models.workspaces import Name

MAX_MONTHLY_USD: Final = 1e9
MAX_THRESHOLD: Final = 10.0
MAX_THRESHOLDS: Final = 10
DEFAULT_THRESHOLDS: Final = (0.5, 0.8, 1.0)
THRESHOLD_DECIMALS: Final = 4
MAX_WEBHOOK_URL_CHARS: Final = 2048
MAX_NOTIFICATIONS_LIMIT: Final = 200
DEFAULT_NOTIFICATIONS_LIMIT: Final = 50

NotificationKind = Literal["budget", "anomaly"]
CrossedBy = Literal["actual", "forecast"]
DeliveryStatus = Literal["pending", "delivered", "undelivered", "skipped"]


def _four_decimals(value: float) -> float:
    if round(value, THRESHOLD_DECIMALS) != value:
        raise ValueError(f"use at most {THRESHOLD_DECIMALS} decimals")
    return value


Threshold = Annotated[
    float,
    Field(gt=0, le=MAX_THRESHOLD, allow_inf_nan=False),
    AfterValidator(_four_decimals),
]
MonthlyUsd = Annotated[float, Field(gt=0, le=MAX_MONTHLY_USD, allow_inf_nan=False)]
# Checked for safety (https, public addresses) by ``shared.budgets.addresses`` in the rules,
# which know whether the local stack's loopback receivers are allowed.
WebhookUrl = Annotated[str, Field(min_length=1, max_length=MAX_WEBHOOK_URL_CHARS)]


def threshold_key(threshold: float) -> str:
    """A threshold as an id part: in ten-thousandths (0.8 -> ``8000``)."""
    return str(round(threshold * 10**THRESHOLD_DECIMALS))


def _unique_sorted(values: list[float]) -> list[float]:
    if len(set(values)) != len(values):
        raise ValueError("thresholds must not repeat")
    return sorted(values)


Thresholds = Annotated[
    list[Threshold],
    Field(min_length=1, max_length=MAX_THRESHOLDS),
    AfterValidator(_unique_sorted),
]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Response(BaseModel):
    # Built from the store's documents by name; a document's other fields are ignored, so a
    # view shows only what it declares.
    model_config = ConfigDict(frozen=True, from_attributes=True, extra="ignore")

    @field_serializer("*", when_used="json")
    def _times(self, value: object) -> object:
        return iso_utc(value) if isinstance(value, datetime) else value


class BudgetScope(_Request):
    """What the budget counts: the spend of one feature, model and/or provider (none: the
    whole workspace). Values are compared as usage records store them (providers
    lower-cased, as ingest does)."""

    feature: DimensionName | None = None
    model: DimensionName | None = None
    provider: ProviderId | None = None


# --- requests ---------------------------------------------------------------------------------


class BudgetRequest(_Request):
    """``POST /{ws}/budgets``."""

    name: Name
    monthly_usd: MonthlyUsd
    scope: BudgetScope = Field(default_factory=BudgetScope)
    thresholds: Thresholds = Field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    webhook_url: WebhookUrl | None = None
    anomalies: bool = False


class BudgetChangeRequest(_Request):
    """``PATCH /{ws}/budgets/{id}``: the fields given change (``webhook_url: null`` removes
    the webhook); at least one."""

    name: Name | None = None
    monthly_usd: MonthlyUsd | None = None
    scope: BudgetScope | None = None
    thresholds: Thresholds | None = None
    webhook_url: WebhookUrl | None = None
    anomalies: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> BudgetChangeRequest:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        for name in ("name", "monthly_usd", "scope", "thresholds", "anomalies"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class NotificationsQuery(_Request):
    limit: int = Field(default=DEFAULT_NOTIFICATIONS_LIMIT, ge=1, le=MAX_NOTIFICATIONS_LIMIT)


class ReadRequest(_Request):
    """``POST /{ws}/notifications/read``: mark read every notification up to this one (none:
    every notification so far)."""

    notification_id: str | None = Field(default=None, pattern=ID_PATTERN)


# --- what the store keeps ---------------------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class BudgetDoc(_Doc):
    """``workspaces/{ws}/budgets/{budget_id}``."""

    budget_id: str
    workspace_id: str
    name: str
    monthly_usd: float
    scope: BudgetScope = Field(default_factory=BudgetScope)
    thresholds: list[float]
    webhook_url: str | None = None
    anomalies: bool = False
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookSecretDoc(_Doc):
    """``workspaces/{ws}/secrets/webhook``: the signing secret, as shown to the admin once."""

    workspace_id: str
    secret: str = Field(repr=False)
    created_at: datetime
    created_by: str


class Delivery(_Doc):
    """One webhook's delivery of a notification."""

    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_error: str | None = None
    at: datetime | None = None
    # The receiver's host (the URL's path and query may be a credential: never kept here).
    host: str | None = None


class Period(_Doc):
    start: str  # YYYY-MM-DD, UTC
    end: str


class NotificationDoc(_Doc):
    """``workspaces/{ws}/notifications/{id}``. The id is the alert's once-only key: a
    budget's ``b_{budget}_{YYYYMM}_{threshold}``, a day's anomaly ``a_{YYYYMMDD}``."""

    notification_id: str
    workspace_id: str
    kind: NotificationKind
    text: str
    created_at: datetime
    period: Period
    spend_usd: float
    budget_id: str | None = None
    budget_name: str | None = None
    threshold: float | None = None
    crossed_by: CrossedBy | None = None
    forecast_usd: float | None = None
    monthly_usd: float | None = None
    # Anomalies: the day judged, its median baseline and what drove it.
    detail: dict[str, Any] = Field(default_factory=dict)
    # Budget id -> delivery to its webhook (the budgets whose webhooks get this alert).
    deliveries: dict[str, Delivery] = Field(default_factory=dict)
    # Whether its messages (apex-notify, the relay's frame) were published.
    published: bool = False


# --- responses --------------------------------------------------------------------------------


class BudgetView(_Response):
    budget_id: str
    name: str
    monthly_usd: float
    scope: BudgetScope
    thresholds: list[float]
    # Admins see the URL; other members only its host (a Slack URL is itself a credential).
    webhook_url: str | None
    webhook_host: str | None
    anomalies: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    # This UTC calendar month: spend so far and the month's forecast (DESIGN §11).
    month: str
    spend_usd: float
    forecast_usd: float


class BudgetCreated(BudgetView):
    """201; ``webhook_secret``: the workspace's signing secret, only in the response that
    created it (the first budget with a webhook)."""

    webhook_secret: str | None = None


class BudgetList(_Response):
    budgets: list[BudgetView]


class WebhookSecretView(_Response):
    webhook_secret: str


class DeliveryView(_Response):
    status: DeliveryStatus
    attempts: int
    host: str | None
    last_error: str | None
    at: datetime | None


class NotificationView(_Response):
    notification_id: str
    kind: NotificationKind
    text: str
    ts: datetime
    period: dict[str, str]
    spend_usd: float
    budget_id: str | None
    budget_name: str | None
    threshold: float | None
    crossed_by: CrossedBy | None
    forecast_usd: float | None
    monthly_usd: float | None
    detail: dict[str, Any]
    deliveries: dict[str, DeliveryView]
    unread: bool

    @classmethod
    def of(cls, doc: NotificationDoc, read_up_to: datetime | None) -> NotificationView:
        # The document's fields by name, but three: ``ts`` is its ``created_at`` (the name
        # every frame's time has), the deliveries in budget order, and ``unread`` is the
        # reader's (against their read mark), not the document's.
        return cls.model_validate(
            {
                **doc.model_dump(),
                "ts": doc.created_at,
                "deliveries": dict(sorted(doc.deliveries.items())),
                "unread": read_up_to is None or doc.created_at > read_up_to,
            }
        )


class NotificationList(_Response):
    notifications: list[NotificationView]
    unread: int


class ReadMarked(_Response):
    read_up_to: datetime | None


# --- Pub/Sub messages -------------------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BudgetTick(_Message):
    """On ``apex-budget-tick``. Without ``workspace_id`` (Cloud Scheduler's, every minute;
    the devstack's): fan out one tick per workspace with budgets. With it: check that
    workspace's budgets. ``at``: the moment judged (the fan-out passes its own on; a tick
    without one uses the message's publish time, so a redelivery judges the same moment)."""

    kind: Literal["budget_tick"] = "budget_tick"
    workspace_id: str | None = Field(default=None, pattern=ID_PATTERN)
    at: AwareDatetime | None = None

    def attributes(self) -> dict[str, str]:
        attributes: dict[str, str] = {"kind": self.kind}
        if self.workspace_id is not None:
            attributes["workspace_id"] = self.workspace_id
        return attributes


class NotifyRequested(_Message):
    """On ``apex-notify``: deliver notification ``notification_id`` to the webhook of budget
    ``budget_id``."""

    kind: Literal["notify"] = "notify"
    workspace_id: str = Field(pattern=ID_PATTERN)
    notification_id: str = Field(pattern=ID_PATTERN)
    budget_id: str = Field(pattern=ID_PATTERN)

    def attributes(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "workspace_id": self.workspace_id,
            "notification_id": self.notification_id,
            "budget_id": self.budget_id,
        }


class NotificationFrame(_Response):
    """``{"type":"notification","notification":{...}}`` (DESIGN §3.8), published on
    ``apex-events`` with attributes ``kind=notification`` and ``workspace_id``; every relay
    instance receives it and sends it to its sockets of that workspace."""

    type: Literal["notification"] = "notification"
    workspace_id: str
    notification: NotificationView

    def text(self) -> str:
        # What the socket gets: the frame without the routing field.
        return self.model_dump_json(exclude={"workspace_id"})
