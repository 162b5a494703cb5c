"""Resource name parsing and validation with the real service's rules."""

import re
from typing import NamedTuple

# Same rules as the real service: starts with a letter, 3..255 chars of [A-Za-z0-9-_.~+%].
_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_PROJECT_RE = re.compile(r"[^/\s]+")

# Topic name the real service reports for subscriptions whose topic was deleted.
DELETED_TOPIC = "_deleted-topic_"


class InvalidNameError(ValueError):
    """A resource name that the real service would reject with INVALID_ARGUMENT."""


class ResourceName(NamedTuple):
    project: str
    resource_id: str


def _valid_id(resource_id: str) -> bool:
    return _ID_RE.fullmatch(resource_id) is not None and not resource_id.startswith("goog")


def parse_project(name: str) -> str:
    """Return the project id of `projects/{project}`."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "projects" or not _PROJECT_RE.fullmatch(parts[1]):
        raise InvalidNameError(f"Invalid [projects] name: (name={name})")
    return parts[1]


def _parse(name: str, collection: str) -> ResourceName:
    parts = name.split("/")
    if (
        len(parts) != 4
        or parts[0] != "projects"
        or parts[2] != collection
        or not _PROJECT_RE.fullmatch(parts[1])
        or not _valid_id(parts[3])
    ):
        raise InvalidNameError(f"Invalid [{collection}] name: (name={name})")
    return ResourceName(parts[1], parts[3])


def parse_topic(name: str) -> ResourceName:
    """Validate `projects/{project}/topics/{topic}`."""
    return _parse(name, "topics")


def parse_subscription(name: str) -> ResourceName:
    """Validate `projects/{project}/subscriptions/{subscription}`."""
    return _parse(name, "subscriptions")
