"""Pydantic models shared by the functions, the relay and the agents."""
