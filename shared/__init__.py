"""Apex: the package every deployable imports (config, auth, models, store, bus, agents)."""
