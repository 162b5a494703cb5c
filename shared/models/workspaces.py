"""Request and response bodies of the ``workspaces`` function (DESIGN §9).

Requests forbid unknown fields and bound every size (a name 1..100 characters, an email at
most 254), so a bad one is a 422 naming the field. Times are ISO 8601 UTC with a ``Z``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    RootModel,
    StringConstraints,
    field_serializer,
    model_validator,
)

from shared.models.events import iso_utc
from shared.models.usage import Name as ModelName
from shared.models.usage import ProviderId
from shared.store.documents import PriceEntryDoc
from shared.workspaces.keys import KeyScope
from shared.workspaces.roles import Role

MAX_NAME_CHARS: Final = 100
MAX_EMAIL_CHARS: Final = 254  # RFC 5321's limit on a path, what a mailbox can be
MAX_AUDIT_LIMIT: Final = 200
# A workspace's price book and allowed models: enough for every model it uses, and small
# enough for one settings document and its audit entry.
MAX_PRICE_ENTRIES: Final = 200
MAX_ALLOWED_MODELS: Final = 200
# USD per million tokens: above any list price (the dearest are a few hundred).
MAX_PRICE_MTOK: Final = Decimal(10_000)
DEFAULT_AUDIT_LIMIT: Final = 50
# No control characters (a name is shown in the chat page and in logs).
_NAME_PATTERN: Final = r"^[^\x00-\x1f\x7f]+$"
# A mailbox as people type it: a local part without spaces or "@", and a domain of
# dot-separated DNS labels. Compared lower-cased (DESIGN §9); deliverability is not checked.
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN: Final = rf"^[^@\s\x00-\x1f\x7f]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"

Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS, pattern=_NAME_PATTERN
    ),
]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=MAX_EMAIL_CHARS, pattern=EMAIL_PATTERN
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Response(BaseModel):
    # Built from the store's documents by name (``View.model_validate(doc)``); a document's
    # other fields (an API key's ``secret_hash``) are ignored, so a view shows only what it
    # declares.
    model_config = ConfigDict(frozen=True, from_attributes=True, extra="ignore")

    @field_serializer("*", when_used="json")
    def _times(self, value: object) -> object:
        return iso_utc(value) if isinstance(value, datetime) else value


# --- requests ---------------------------------------------------------------------------------


class CreateWorkspaceRequest(_Request):
    name: Name


class InviteRequest(_Request):
    email: Email
    role: Role


class RoleRequest(_Request):
    role: Role


class KeyRequest(_Request):
    name: Name
    scope: KeyScope
    # In the future and at most two years ahead (checked against the server's clock).
    expires_at: AwareDatetime | None = None


class AcceptRequest(_Request):
    """Accepting an invite takes no fields (the body may be absent or ``{}``)."""


class NoQuery(_Request):
    """A listing takes no query parameters (an unknown one is a 422, not ignored)."""


class AuditQuery(_Request):
    limit: int = Field(default=DEFAULT_AUDIT_LIMIT, ge=1, le=MAX_AUDIT_LIMIT)
    # The entries older than this one (the smallest seq of the previous page).
    before_seq: int | None = Field(default=None, ge=1)


# USD per million tokens, to 1e-9 (the rollups' unit); shown as a JSON number.
PriceMtok = Annotated[
    Decimal,
    Field(ge=0, le=MAX_PRICE_MTOK, decimal_places=9, allow_inf_nan=False),
    PlainSerializer(float, return_type=float, when_used="json"),
]
DiscountPct = Annotated[
    Decimal,
    Field(ge=0, lt=100, decimal_places=4, allow_inf_nan=False),
    PlainSerializer(float, return_type=float, when_used="json"),
]


class PriceEntryIn(_Request):
    """One negotiated price (docs/prices.md): explicit prices replace the list ones, a
    discount applies to the list (or given) prices, from the UTC day ``from`` (none: always)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    provider: ProviderId
    model: ModelName
    input_mtok: PriceMtok | None = None
    cached_input_mtok: PriceMtok | None = None
    output_mtok: PriceMtok | None = None
    discount_pct: DiscountPct | None = None
    from_: date | None = Field(default=None, alias="from")

    @model_validator(mode="after")
    def _says_something(self) -> PriceEntryIn:
        given = (self.input_mtok, self.cached_input_mtok, self.output_mtok, self.discount_pct)
        if all(value is None for value in given):
            raise ValueError(
                "give at least one of input_mtok, cached_input_mtok, output_mtok, discount_pct"
            )
        return self

    def doc(self) -> PriceEntryDoc:
        return PriceEntryDoc.model_validate(self, from_attributes=True)


class PricesRequest(RootModel[list[PriceEntryIn]]):
    """``PUT /{ws}/prices``: the whole book, replacing the one before (``[]`` clears it)."""

    model_config = ConfigDict(frozen=True)

    root: list[PriceEntryIn] = Field(max_length=MAX_PRICE_ENTRIES)


class ModelRefIn(_Request):
    provider: ProviderId
    model: ModelName


class SettingsRequest(_Request):
    """``PUT /{ws}/settings``. ``allowed_models``: the models recommendations may propose
    (null: any)."""

    allowed_models: Annotated[list[ModelRefIn], Field(max_length=MAX_ALLOWED_MODELS)] | None


# --- responses --------------------------------------------------------------------------------


class WorkspaceView(_Response):
    workspace_id: str
    name: str
    role: Role


class WorkspaceList(_Response):
    workspaces: list[WorkspaceView]


class MemberView(_Response):
    uid: str
    email: str | None
    role: Role
    added_by: str
    added_at: datetime


class MemberList(_Response):
    members: list[MemberView]


class InviteCreated(_Response):
    invite_id: str
    email: str
    role: Role
    expires_at: datetime


class InviteView(InviteCreated):
    invited_by: str
    created_at: datetime


class InviteList(_Response):
    invites: list[InviteView]


class KeyCreated(_Response):
    """201: the key, and ``secret``: the whole credential ``apx_…``, shown this once."""

    key_id: str
    name: str
    scope: KeyScope
    prefix: str
    secret: str
    created_at: datetime
    expires_at: datetime | None


class KeyView(_Response):
    """A key as listed: never its secret or hash."""

    key_id: str
    name: str
    scope: KeyScope
    prefix: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyList(_Response):
    keys: list[KeyView]


class AuditView(_Response):
    seq: int
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
    at: datetime


class AuditList(_Response):
    entries: list[AuditView]


class PriceEntryView(BaseModel):
    # Not a ``_Response``: its serializer of every field would keep the prices' Decimals
    # (JSON strings) from their own (JSON numbers).
    model_config = ConfigDict(
        frozen=True,
        from_attributes=True,
        extra="ignore",
        populate_by_name=True,
        serialize_by_alias=True,
    )

    provider: str
    model: str
    input_mtok: PriceMtok | None
    cached_input_mtok: PriceMtok | None
    output_mtok: PriceMtok | None
    discount_pct: DiscountPct | None
    from_: date | None = Field(alias="from")


class PriceList(_Response):
    """The workspace's prices; empty: list prices everywhere."""

    prices: list[PriceEntryView]


class ModelRefView(_Response):
    provider: str
    model: str


class SettingsView(_Response):
    allowed_models: list[ModelRefView] | None
