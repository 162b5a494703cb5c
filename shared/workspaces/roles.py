"""Roles, each including the ones below it, and the least role each kind of action needs
(DESIGN §9): a table, so that every function and frame asks the same question."""

from __future__ import annotations

from typing import Final, Literal, get_args

Role = Literal["owner", "admin", "member", "viewer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

# What a request does in its workspace. `manage`: members below owner, invites, API keys,
# budgets, prices, the audit log; `own`: owners and the workspace itself.
Action = Literal["read", "chat", "ingest", "manage", "own"]

_RANK: Final[dict[Role, int]] = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}

NEEDS: Final[dict[Action, Role]] = {
    "read": "viewer",
    "chat": "viewer",
    "ingest": "member",
    "manage": "admin",
    "own": "owner",
}


def at_least(role: Role, needed: Role) -> bool:
    return _RANK[role] >= _RANK[needed]


def allows(role: Role, action: Action) -> bool:
    return at_least(role, NEEDS[action])
