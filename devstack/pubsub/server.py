"""grpc.aio servicers for google.pubsub.v1.Publisher and google.pubsub.v1.Subscriber.

google-cloud-pubsub ships proto-plus types rather than generated servicer stubs, so the methods
are registered as generic handlers working on the raw protobuf classes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1 import types

from devstack.pubsub import config as cfg
from devstack.pubsub.config import ApiError, Pb, invalid
from devstack.pubsub.state import Broker, Consumer, Entry, SubscriptionState

log = logging.getLogger("devstack.pubsub")

_Empty = empty_pb2.Empty
_StreamingPullResponse = types.StreamingPullResponse.pb()
_PullResponse = types.PullResponse.pb()

# Pull without return_immediately waits at most this long for messages, like the real service.
MAX_PULL_WAIT = 30.0
MAX_MESSAGES_PER_RESPONSE = 1000
# A response stays under 4 MiB, the receive limit of a gRPC channel left at its defaults, as
# the official client's channel to an emulator is: it drops a larger response and the stream
# with it, and the messages in it stay leased until their deadline runs out, only to come
# back in the same oversized response. The margin covers each ReceivedMessage's ack id,
# delivery attempt and framing (under 64 bytes) and the subscription properties.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_MESSAGE_BYTES_PER_RESPONSE = MAX_RESPONSE_BYTES - 64 * MAX_MESSAGES_PER_RESPONSE - 1024
SERVER_OPTIONS = [
    # Without this a second emulator could silently share the port instead of failing.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 20 * 1024 * 1024),
    ("grpc.max_send_message_length", -1),
    # The client pings every 30 s; accept that instead of answering with GOAWAY.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
]

Handler = Callable[[Pb, grpc.aio.ServicerContext[Pb, Pb]], Awaitable[Pb]]


class StreamConsumer(Consumer):
    def __init__(self, max_messages: int, max_bytes: int, ack_deadline: int) -> None:
        super().__init__(max_messages, max_bytes)
        self.ack_deadline = ack_deadline
        self.closed = False
        self.error: ApiError | None = None


def _unary(method: Callable[[Pb], Awaitable[Pb]]) -> Handler:
    async def handler(request: Pb, context: grpc.aio.ServicerContext[Pb, Pb]) -> Pb:
        try:
            return await method(request)
        except ApiError as exc:
            await context.abort(exc.code, exc.message)
            raise  # unreachable: abort raises

    return handler


def _fill_received(received: Pb, sub: SubscriptionState, entries: Iterable[Entry]) -> None:
    with_attempt = sub.has_dead_letter  # the real service sets it only with dead lettering
    for entry in entries:
        item = received.add()
        item.ack_id = entry.ack_id
        item.message.CopyFrom(entry.message)
        if with_attempt:
            item.delivery_attempt = entry.attempts


def _take_for_pull(sub: SubscriptionState, max_messages: int) -> list[Entry]:
    return sub.take(
        None,
        max_messages,
        sub.config.ack_deadline_seconds,
        max_bytes=MAX_MESSAGE_BYTES_PER_RESPONSE,
    )


def _check_deadline(seconds: int) -> None:
    if not 0 <= seconds <= cfg.MAX_ACK_DEADLINE:
        raise invalid(
            f"Invalid ack deadline given: {seconds}; it must be between 0 and "
            f"{cfg.MAX_ACK_DEADLINE} seconds."
        )


class PublisherService:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def create_topic(self, request: Pb) -> Pb:
        return self.broker.create_topic(request)

    async def update_topic(self, request: Pb) -> Pb:
        return self.broker.update_topic(request.topic, list(request.update_mask.paths))

    async def publish(self, request: Pb) -> Pb:
        ids = self.broker.publish(request.topic, list(request.messages))
        return types.PublishResponse.pb()(message_ids=ids)

    async def get_topic(self, request: Pb) -> Pb:
        return self.broker.topic(request.topic).config

    async def list_topics(self, request: Pb) -> Pb:
        topics, token = self.broker.list_topics(
            request.project, request.page_size, request.page_token
        )
        return types.ListTopicsResponse.pb()(topics=topics, next_page_token=token)

    async def list_topic_subscriptions(self, request: Pb) -> Pb:
        subs, token = self.broker.list_topic_subscriptions(
            request.topic, request.page_size, request.page_token
        )
        return types.ListTopicSubscriptionsResponse.pb()(subscriptions=subs, next_page_token=token)

    async def delete_topic(self, request: Pb) -> Pb:
        self.broker.delete_topic(request.topic)
        return _Empty()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Publisher",
            {
                "CreateTopic": _rpc(self.create_topic, types.Topic, types.Topic),
                "UpdateTopic": _rpc(self.update_topic, types.UpdateTopicRequest, types.Topic),
                "Publish": _rpc(self.publish, types.PublishRequest, types.PublishResponse),
                "GetTopic": _rpc(self.get_topic, types.GetTopicRequest, types.Topic),
                "ListTopics": _rpc(
                    self.list_topics, types.ListTopicsRequest, types.ListTopicsResponse
                ),
                "ListTopicSubscriptions": _rpc(
                    self.list_topic_subscriptions,
                    types.ListTopicSubscriptionsRequest,
                    types.ListTopicSubscriptionsResponse,
                ),
                "DeleteTopic": _rpc(self.delete_topic, types.DeleteTopicRequest, None),
            },
        )


class SubscriberService:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def create_subscription(self, request: Pb) -> Pb:
        return self.broker.create_subscription(request)

    async def get_subscription(self, request: Pb) -> Pb:
        return self.broker.subscription(request.subscription).config

    async def update_subscription(self, request: Pb) -> Pb:
        return self.broker.update_subscription(
            request.subscription, list(request.update_mask.paths)
        )

    async def list_subscriptions(self, request: Pb) -> Pb:
        subs, token = self.broker.list_subscriptions(
            request.project, request.page_size, request.page_token
        )
        return types.ListSubscriptionsResponse.pb()(subscriptions=subs, next_page_token=token)

    async def delete_subscription(self, request: Pb) -> Pb:
        self.broker.delete_subscription(request.subscription)
        return _Empty()

    async def modify_ack_deadline(self, request: Pb) -> Pb:
        sub = self.broker.subscription(request.subscription)
        _check_deadline(request.ack_deadline_seconds)
        sub.modify_ack_deadline(request.ack_ids, request.ack_deadline_seconds)
        return _Empty()

    async def acknowledge(self, request: Pb) -> Pb:
        self.broker.subscription(request.subscription).acknowledge(request.ack_ids)
        return _Empty()

    async def modify_push_config(self, request: Pb) -> Pb:
        self.broker.modify_push_config(request.subscription, request.push_config)
        return _Empty()

    async def pull(self, request: Pb, context: grpc.aio.ServicerContext[Pb, Pb]) -> Pb:
        try:
            return await self._pull(request, context.time_remaining())
        except ApiError as exc:
            await context.abort(exc.code, exc.message)
            raise  # unreachable: abort raises

    async def _pull(self, request: Pb, time_remaining: float | None) -> Pb:
        sub = self.broker.subscription(request.subscription)
        if request.max_messages <= 0:
            raise invalid("max_messages must be a positive integer.")
        sub.touch()
        entries = _take_for_pull(sub, request.max_messages)
        if not entries and not request.return_immediately:
            entries = await self._wait_and_take(sub, request.max_messages, time_remaining)
        response = _PullResponse()
        _fill_received(response.received_messages, sub, entries)
        return response

    async def _wait_and_take(
        self, sub: SubscriptionState, max_messages: int, time_remaining: float | None
    ) -> list[Entry]:
        loop = asyncio.get_running_loop()
        # Answer (empty) a little before the client's own deadline so it does not see an error.
        wait = MAX_PULL_WAIT if time_remaining is None else min(MAX_PULL_WAIT, time_remaining - 1)
        give_up = loop.time() + wait
        event = asyncio.Event()
        sub.waiters.add(event)
        try:
            while True:
                timeout = give_up - loop.time()
                if timeout <= 0:
                    return []
                try:
                    await asyncio.wait_for(event.wait(), timeout)
                except TimeoutError:
                    return []
                event.clear()
                if sub.deleted:
                    raise cfg.not_found(sub.name)
                entries = _take_for_pull(sub, max_messages)
                if entries:
                    return entries
        finally:
            sub.waiters.discard(event)

    async def streaming_pull(
        self, requests: AsyncIterator[Pb], context: grpc.aio.ServicerContext[Pb, Pb]
    ) -> AsyncIterator[Pb]:
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            return
        try:
            if not first.subscription:
                raise invalid("The first StreamingPullRequest must name a subscription.")
            sub = self.broker.subscription(first.subscription)
            seconds = first.stream_ack_deadline_seconds
            if not cfg.MIN_ACK_DEADLINE <= seconds <= cfg.MAX_ACK_DEADLINE:
                raise invalid(f"Invalid stream_ack_deadline_seconds: {seconds}.")
            stream = StreamConsumer(
                first.max_outstanding_messages, first.max_outstanding_bytes, seconds
            )
            _apply_stream_request(sub, stream, first)
        except ApiError as exc:
            await context.abort(exc.code, exc.message)
            return
        properties = types.StreamingPullResponse.SubscriptionProperties.pb()(
            message_ordering_enabled=sub.config.enable_message_ordering
        )
        sub.streams.add(stream)
        sub.waiters.add(stream.wake)
        reader = asyncio.create_task(_read_stream(requests, sub, stream))
        log.debug("stream opened", extra={"subscription": sub.name})
        try:
            while True:
                if stream.error is not None:
                    await context.abort(stream.error.code, stream.error.message)
                if sub.deleted:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"{sub.name} was deleted.")
                if stream.closed:
                    return
                entries: list[Entry] = []
                if stream.has_room():
                    entries = sub.take(
                        stream,
                        MAX_MESSAGES_PER_RESPONSE,
                        stream.ack_deadline,
                        max_bytes=MAX_MESSAGE_BYTES_PER_RESPONSE,
                    )
                if entries:
                    response = _StreamingPullResponse(subscription_properties=properties)
                    _fill_received(response.received_messages, sub, entries)
                    yield response
                    continue
                stream.wake.clear()
                await stream.wake.wait()
        finally:
            reader.cancel()
            sub.streams.discard(stream)
            sub.waiters.discard(stream.wake)
            log.debug("stream closed", extra={"subscription": sub.name})

    def handler(self) -> grpc.GenericRpcHandler:
        streaming_pull = grpc.stream_stream_rpc_method_handler(
            self.streaming_pull,
            request_deserializer=types.StreamingPullRequest.pb().FromString,
            response_serializer=types.StreamingPullResponse.pb().SerializeToString,
        )
        pull = grpc.unary_unary_rpc_method_handler(
            self.pull,
            request_deserializer=types.PullRequest.pb().FromString,
            response_serializer=types.PullResponse.pb().SerializeToString,
        )
        return grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Subscriber",
            {
                "CreateSubscription": _rpc(
                    self.create_subscription, types.Subscription, types.Subscription
                ),
                "GetSubscription": _rpc(
                    self.get_subscription, types.GetSubscriptionRequest, types.Subscription
                ),
                "UpdateSubscription": _rpc(
                    self.update_subscription, types.UpdateSubscriptionRequest, types.Subscription
                ),
                "ListSubscriptions": _rpc(
                    self.list_subscriptions,
                    types.ListSubscriptionsRequest,
                    types.ListSubscriptionsResponse,
                ),
                "DeleteSubscription": _rpc(
                    self.delete_subscription, types.DeleteSubscriptionRequest, None
                ),
                "ModifyAckDeadline": _rpc(
                    self.modify_ack_deadline, types.ModifyAckDeadlineRequest, None
                ),
                "Acknowledge": _rpc(self.acknowledge, types.AcknowledgeRequest, None),
                "ModifyPushConfig": _rpc(
                    self.modify_push_config, types.ModifyPushConfigRequest, None
                ),
                "Pull": pull,
                "StreamingPull": streaming_pull,
            },
        )


def _rpc(
    method: Callable[[Pb], Awaitable[Pb]], request_type: type, response_type: type | None
) -> grpc.RpcMethodHandler[Pb, Pb]:
    """A unary handler; response_type None means google.protobuf.Empty."""
    serializer = (_Empty if response_type is None else response_type.pb()).SerializeToString  # type: ignore[attr-defined]
    return grpc.unary_unary_rpc_method_handler(
        _unary(method),
        request_deserializer=request_type.pb().FromString,  # type: ignore[attr-defined]
        response_serializer=serializer,
    )


def _apply_stream_request(sub: SubscriptionState, stream: StreamConsumer, request: Pb) -> None:
    if len(request.modify_deadline_ack_ids) != len(request.modify_deadline_seconds):
        raise invalid("modify_deadline_ack_ids and modify_deadline_seconds differ in length.")
    for seconds in request.modify_deadline_seconds:
        _check_deadline(seconds)
    if request.stream_ack_deadline_seconds:
        seconds = request.stream_ack_deadline_seconds
        if not cfg.MIN_ACK_DEADLINE <= seconds <= cfg.MAX_ACK_DEADLINE:
            raise invalid(f"Invalid stream_ack_deadline_seconds: {seconds}.")
        stream.ack_deadline = seconds
    if request.ack_ids:
        sub.acknowledge(request.ack_ids)
    for ack_id, seconds in zip(
        request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=True
    ):
        sub.modify_ack_deadline((ack_id,), seconds)
    sub.touch()


async def _read_stream(
    requests: AsyncIterator[Pb], sub: SubscriptionState, stream: StreamConsumer
) -> None:
    """Apply acks and deadline changes arriving on a stream until the client stops sending."""
    try:
        async for request in requests:
            if sub.deleted:
                return
            _apply_stream_request(sub, stream, request)
    except ApiError as exc:
        stream.error = exc
    finally:
        stream.closed = True
        stream.wake.set()


def build_server(broker: Broker) -> grpc.aio.Server:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers(
        (PublisherService(broker).handler(), SubscriberService(broker).handler())
    )
    return server
