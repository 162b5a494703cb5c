"""The fault tests reuse the in-process function fixtures."""

from tests.functions.conftest import function, new_user, topics, user

__all__ = ["function", "new_user", "topics", "user"]
