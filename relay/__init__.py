"""The chat WebSocket relay (DESIGN §3): an ASGI app run by uvicorn, on Cloud Run.

``relay.app`` builds the app (routes, start-up and shutdown), ``relay.fanout`` is this
instance's subscription on ``apex-events`` and the run-to-socket fan-out, ``relay.session``
one socket's protocol (docs/relay.md), ``relay.settings`` what it reads from the environment.
"""
