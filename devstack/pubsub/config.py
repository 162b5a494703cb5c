"""Validation and server-side defaults for topic and subscription configuration."""

from typing import Any, TypeAlias
from urllib.parse import urlsplit

import grpc

from devstack.pubsub import names
from devstack.pubsub.filter import FilterError, Predicate, parse_filter

# proto-plus builds the raw protobuf classes at runtime, so type checkers only see Any;
# the alias names what a value holds.
Pb: TypeAlias = Any

MIN_ACK_DEADLINE = 10
MAX_ACK_DEADLINE = 600
DEFAULT_ACK_DEADLINE = 10
DEFAULT_MAX_DELIVERY_ATTEMPTS = 5
MIN_DELIVERY_ATTEMPTS = 5
MAX_DELIVERY_ATTEMPTS = 100
DEFAULT_MIN_BACKOFF = 10.0
DEFAULT_MAX_BACKOFF = 600.0
MAX_BACKOFF = 600.0
DEFAULT_EXPIRATION_TTL = 31 * 24 * 3600
DEFAULT_RETENTION = 7 * 24 * 3600

# Fields that UpdateSubscription may change; the real service treats the rest as immutable.
SUBSCRIPTION_UPDATABLE = frozenset(
    {
        "ack_deadline_seconds",
        "push_config",
        "dead_letter_policy",
        "retry_policy",
        "labels",
        "expiration_policy",
        "message_retention_duration",
        "retain_acked_messages",
        "enable_exactly_once_delivery",
    }
)
TOPIC_UPDATABLE = frozenset(
    {"labels", "message_retention_duration", "message_storage_policy", "kms_key_name"}
)


class ApiError(Exception):
    """An error reported to the client with a gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(resource: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={resource}).")


def duration_seconds(duration: Pb) -> float:
    return float(duration.seconds + duration.nanos / 1e9)


def set_duration(duration: Pb, seconds: float) -> None:
    duration.seconds = int(seconds)
    duration.nanos = round((seconds - int(seconds)) * 1e9)


def apply_update_mask(target: Pb, source: Pb, paths: list[str], allowed: frozenset[str]) -> None:
    """Copy the masked top-level fields from source to target (absent in source = cleared)."""
    if not paths:
        raise invalid("The update_mask in the request must be set.")
    for path in paths:
        if path not in allowed:
            raise invalid(f"Invalid update_mask provided in the request: {path!r}.")
    for path in paths:
        field = target.DESCRIPTOR.fields_by_name[path]
        target.ClearField(path)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(target, path).update(getattr(source, path))
        elif field.message_type is not None:
            if source.HasField(path):
                getattr(target, path).CopyFrom(getattr(source, path))
        else:
            setattr(target, path, getattr(source, path))


def _validate_push_config(push: Pb) -> None:
    if not push.push_endpoint:
        return
    parts = urlsplit(push.push_endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid(f"Invalid push endpoint given (endpoint={push.push_endpoint}).")


def normalize_subscription(config: Pb) -> Predicate | None:
    """Validate a subscription in place, fill in the defaults, and compile its filter."""
    try:
        names.parse_subscription(config.name)
        if config.topic != names.DELETED_TOPIC:
            names.parse_topic(config.topic)
    except names.InvalidNameError as exc:
        raise invalid(str(exc)) from exc
    for unsupported in ("bigquery_config", "cloud_storage_config", "bigtable_config"):
        if config.HasField(unsupported):
            raise ApiError(
                grpc.StatusCode.UNIMPLEMENTED, f"{unsupported} is not supported by the emulator."
            )

    if config.ack_deadline_seconds == 0:
        config.ack_deadline_seconds = DEFAULT_ACK_DEADLINE
    if not MIN_ACK_DEADLINE <= config.ack_deadline_seconds <= MAX_ACK_DEADLINE:
        raise invalid(
            f"Invalid ack deadline given: {config.ack_deadline_seconds}; it must be between "
            f"{MIN_ACK_DEADLINE} and {MAX_ACK_DEADLINE} seconds."
        )

    _validate_push_config(config.push_config)

    if config.HasField("dead_letter_policy"):
        policy = config.dead_letter_policy
        try:
            names.parse_topic(policy.dead_letter_topic)
        except names.InvalidNameError as exc:
            raise invalid(f"Invalid dead letter topic: {exc}") from exc
        if policy.max_delivery_attempts == 0:
            policy.max_delivery_attempts = DEFAULT_MAX_DELIVERY_ATTEMPTS
        if not MIN_DELIVERY_ATTEMPTS <= policy.max_delivery_attempts <= MAX_DELIVERY_ATTEMPTS:
            raise invalid(
                f"Invalid max_delivery_attempts: {policy.max_delivery_attempts}; it must be "
                f"between {MIN_DELIVERY_ATTEMPTS} and {MAX_DELIVERY_ATTEMPTS}."
            )

    if config.HasField("retry_policy"):
        policy = config.retry_policy
        if not policy.HasField("minimum_backoff"):
            set_duration(policy.minimum_backoff, DEFAULT_MIN_BACKOFF)
        if not policy.HasField("maximum_backoff"):
            set_duration(policy.maximum_backoff, DEFAULT_MAX_BACKOFF)
        low = duration_seconds(policy.minimum_backoff)
        high = duration_seconds(policy.maximum_backoff)
        if not (0 <= low <= MAX_BACKOFF and 0 <= high <= MAX_BACKOFF and low <= high):
            raise invalid(
                "Invalid retry policy: backoffs must be between 0 and 600 seconds and "
                "minimum_backoff must not exceed maximum_backoff."
            )

    if not config.HasField("expiration_policy"):
        config.expiration_policy.ttl.seconds = DEFAULT_EXPIRATION_TTL
    elif duration_seconds(config.expiration_policy.ttl) < 0:
        raise invalid("Invalid expiration policy: ttl must not be negative.")

    if not config.HasField("message_retention_duration"):
        config.message_retention_duration.seconds = DEFAULT_RETENTION

    # ACTIVE, as reported by the real service for a healthy subscription.
    config.state = 1
    try:
        return parse_filter(config.filter)
    except FilterError as exc:
        raise invalid(f"Invalid filter: {exc}") from exc


def expiration_ttl(config: Pb) -> float | None:
    """Seconds of inactivity after which the subscription is deleted, or None for never."""
    ttl = duration_seconds(config.expiration_policy.ttl)
    return ttl if ttl > 0 else None
