"""Helpers shared by the integration tests (worker processes, workflow modules)."""
