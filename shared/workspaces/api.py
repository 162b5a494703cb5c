"""The ``workspaces`` function (DESIGN §9): its paths below the function's URL, each to a
rule of ``shared.workspaces.service``.

The caller is a signed-in user (API keys are refused before this runs) acting for
themselves: the workspace a path names is checked here, by the rules, against their
membership as Firestore has it now (not the access cache), so 404 for a workspace they are
not in and 403 for an action their role lacks. A change drops this process's cached
answers for what it changed, at once; other processes see it within the cache bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from shared.budgets import api as budgets_api
from shared.edge import HttpResponse, error_response
from shared.errors import MethodNotAllowed, NotFound
from shared.http import Context, ok
from shared.models.workspaces import (
    AcceptRequest,
    AuditList,
    AuditQuery,
    AuditView,
    CreateWorkspaceRequest,
    InviteCreated,
    InviteList,
    InviteRequest,
    InviteView,
    KeyCreated,
    KeyList,
    KeyRequest,
    KeyView,
    MemberList,
    MemberView,
    NoQuery,
    PriceList,
    PricesRequest,
    RoleRequest,
    SettingsRequest,
    SettingsView,
    WorkspaceList,
    WorkspaceView,
)
from shared.store.documents import ModelRefDoc
from shared.workspaces import service

_SEGMENT: Final = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_NO_CONTENT: Final = HttpResponse(204, None)

# A route's handler gets the request and the path's parameters, in order.
Route = Callable[[Context, list[str]], HttpResponse]


# --- the user's workspaces --------------------------------------------------------------------


def list_workspaces(ctx: Context, _: list[str]) -> HttpResponse:
    ctx.query(NoQuery)
    mine = service.workspaces_of(ctx.services.workspaces, ctx.principal.uid)
    return ok(WorkspaceList(workspaces=[WorkspaceView.model_validate(w) for w in mine]))


def create_workspace(ctx: Context, _: list[str]) -> HttpResponse:
    request = ctx.parse(CreateWorkspaceRequest)
    made = service.create_workspace(
        ctx.services.workspaces, ctx.principal.uid, ctx.principal.email, request.name, ctx.now
    )
    return ok(WorkspaceView(workspace_id=made.workspace_id, name=made.name, role="owner"), 201)


def accept_invite(ctx: Context, params: list[str]) -> HttpResponse:
    if ctx.request.body.strip():
        ctx.parse(AcceptRequest)
    principal = ctx.principal
    workspace, member = service.accept_invite(
        ctx.services.workspaces,
        params[0],
        principal.uid,
        principal.email,
        principal.email_verified,
        ctx.now,
    )
    ctx.services.access.forget(workspace.workspace_id, principal.uid)
    return ok(
        WorkspaceView(workspace_id=workspace.workspace_id, name=workspace.name, role=member.role)
    )


# --- members ----------------------------------------------------------------------------------


def list_members(ctx: Context, params: list[str]) -> HttpResponse:
    ctx.query(NoQuery)
    found = service.members(ctx.services.workspaces, params[0], ctx.principal.uid)
    return ok(MemberList(members=[MemberView.model_validate(m) for m in found]))


def change_role(ctx: Context, params: list[str]) -> HttpResponse:
    ws, uid = params
    request = ctx.parse(RoleRequest)
    changed = service.change_role(
        ctx.services.workspaces, ws, ctx.principal.uid, uid, request.role, ctx.now
    )
    ctx.services.access.forget(ws, uid)
    return ok(MemberView.model_validate(changed))


def remove_member(ctx: Context, params: list[str]) -> HttpResponse:
    ws, uid = params
    service.remove_member(ctx.services.workspaces, ws, ctx.principal.uid, uid, ctx.now)
    ctx.services.access.forget(ws, uid)
    return _NO_CONTENT


# --- invites ----------------------------------------------------------------------------------


def create_invite(ctx: Context, params: list[str]) -> HttpResponse:
    request = ctx.parse(InviteRequest)
    made = service.invite(
        ctx.services.workspaces, params[0], ctx.principal.uid, request.email, request.role, ctx.now
    )
    return ok(InviteCreated.model_validate(made), 201)


def list_invites(ctx: Context, params: list[str]) -> HttpResponse:
    ctx.query(NoQuery)
    found = service.pending_invites(ctx.services.workspaces, params[0], ctx.principal.uid, ctx.now)
    return ok(InviteList(invites=[InviteView.model_validate(i) for i in found]))


def delete_invite(ctx: Context, params: list[str]) -> HttpResponse:
    ws, invite_id = params
    service.delete_invite(ctx.services.workspaces, ws, ctx.principal.uid, invite_id, ctx.now)
    return _NO_CONTENT


# --- API keys ---------------------------------------------------------------------------------


def create_key(ctx: Context, params: list[str]) -> HttpResponse:
    request = ctx.parse(KeyRequest)
    # A missing pepper is a fault of the deployment (500, logged), never a weaker key.
    pepper = ctx.services.access.pepper()
    key, credential = service.create_api_key(
        ctx.services.workspaces,
        pepper,
        params[0],
        ctx.principal.uid,
        request.name,
        request.scope,
        request.expires_at,
        ctx.now,
    )
    # The whole credential, shown this once, is not the document's: it keeps only the hash
    # (left out here, though KeyCreated would ignore it too).
    shown = {**key.model_dump(exclude={"secret_hash"}), "secret": credential}
    return ok(KeyCreated.model_validate(shown), 201)


def list_keys(ctx: Context, params: list[str]) -> HttpResponse:
    ctx.query(NoQuery)
    found = service.api_keys(ctx.services.workspaces, params[0], ctx.principal.uid)
    return ok(KeyList(keys=[KeyView.model_validate(k) for k in found]))


def revoke_key(ctx: Context, params: list[str]) -> HttpResponse:
    ws, key_id = params
    service.revoke_api_key(ctx.services.workspaces, ws, ctx.principal.uid, key_id, ctx.now)
    ctx.services.access.forget_key(key_id)
    return _NO_CONTENT


# --- the audit log ----------------------------------------------------------------------------


def audit(ctx: Context, params: list[str]) -> HttpResponse:
    query = ctx.query(AuditQuery)
    entries = service.audit_log(
        ctx.services.workspaces, params[0], ctx.principal.uid, query.limit, query.before_seq
    )
    return ok(AuditList(entries=[AuditView.model_validate(e) for e in entries]))


# --- prices and settings --------------------------------------------------------------------


def get_prices(ctx: Context, params: list[str]) -> HttpResponse:
    ctx.query(NoQuery)
    found = service.settings(ctx.services.workspaces, params[0], ctx.principal.uid)
    return ok(PriceList.model_validate(found))


def put_prices(ctx: Context, params: list[str]) -> HttpResponse:
    request = ctx.parse(PricesRequest)
    changed = service.set_prices(
        ctx.services.workspaces,
        params[0],
        ctx.principal.uid,
        [entry.doc() for entry in request.root],
        ctx.now,
    )
    return ok(PriceList.model_validate(changed))


def get_settings(ctx: Context, params: list[str]) -> HttpResponse:
    ctx.query(NoQuery)
    found = service.settings(ctx.services.workspaces, params[0], ctx.principal.uid)
    return ok(SettingsView.model_validate(found))


def put_settings(ctx: Context, params: list[str]) -> HttpResponse:
    request = ctx.parse(SettingsRequest)
    allowed = request.allowed_models
    changed = service.set_allowed_models(
        ctx.services.workspaces,
        params[0],
        ctx.principal.uid,
        None
        if allowed is None
        else [ModelRefDoc(provider=m.provider, model=m.model) for m in allowed],
        ctx.now,
    )
    return ok(SettingsView.model_validate(changed))


# --- routing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Path:
    """A path pattern: literal segments, and ``{name}`` for a parameter (an id)."""

    pattern: tuple[str, ...]
    methods: dict[str, Route]

    def match(self, segments: list[str]) -> list[str] | None:
        if len(segments) != len(self.pattern):
            return None
        params = []
        for want, got in zip(self.pattern, segments, strict=True):
            if want.startswith("{"):
                if not _SEGMENT.fullmatch(got):
                    return None
                params.append(got)
            elif want != got:
                return None
        return params


# The paths of DESIGN §9 and §11, as the OpenAPI document lists them (``shared.openapi``).
PATHS: Final[tuple[Path, ...]] = (
    Path((), {"GET": list_workspaces, "POST": create_workspace}),
    Path(("invites", "{invite_id}", "accept"), {"POST": accept_invite}),
    Path(("{workspace_id}", "members"), {"GET": list_members}),
    Path(("{workspace_id}", "members", "{uid}"), {"PATCH": change_role, "DELETE": remove_member}),
    Path(("{workspace_id}", "invites"), {"GET": list_invites, "POST": create_invite}),
    Path(("{workspace_id}", "invites", "{invite_id}"), {"DELETE": delete_invite}),
    Path(("{workspace_id}", "keys"), {"GET": list_keys, "POST": create_key}),
    Path(("{workspace_id}", "keys", "{key_id}"), {"DELETE": revoke_key}),
    Path(("{workspace_id}", "audit"), {"GET": audit}),
    Path(("{workspace_id}", "prices"), {"GET": get_prices, "PUT": put_prices}),
    Path(("{workspace_id}", "settings"), {"GET": get_settings, "PUT": put_settings}),
    Path(
        ("{workspace_id}", "budgets"),
        {"GET": budgets_api.list_budgets, "POST": budgets_api.create_budget},
    ),
    Path(
        ("{workspace_id}", "budgets", "{budget_id}"),
        {"PATCH": budgets_api.change_budget, "DELETE": budgets_api.delete_budget},
    ),
    Path(("{workspace_id}", "webhook_secret"), {"POST": budgets_api.rotate_secret}),
    Path(("{workspace_id}", "notifications"), {"GET": budgets_api.list_notifications}),
    Path(("{workspace_id}", "notifications", "read"), {"POST": budgets_api.mark_read}),
)


def workspaces(ctx: Context) -> HttpResponse:
    segments = [s for s in ctx.request.path.split("/") if s]
    allowed: set[str] = set()
    for path in PATHS:
        params = path.match(segments)
        if params is None:
            continue
        route = path.methods.get(ctx.request.method)
        if route is not None:
            return route(ctx, params)
        allowed.update(path.methods)
    if not allowed:
        raise NotFound("no such path in the workspaces function")
    methods = ", ".join(sorted(allowed))
    return error_response(
        MethodNotAllowed(f"{ctx.request.method} is not allowed here; use {methods}"),
        {"Allow": methods},
    )
