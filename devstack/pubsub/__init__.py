"""Local Google Cloud Pub/Sub emulator serving the official client over gRPC.

Run it with `python -m devstack.pubsub --host 127.0.0.1 --port 8085` and point clients at it with
`PUBSUB_EMULATOR_HOST=127.0.0.1:8085`. Modules: `server` (gRPC servicers), `state` (topics,
subscriptions, leases), `config` (validation and defaults), `filter` (filter language), `push`
(push delivery) and `names` (resource names).
"""
