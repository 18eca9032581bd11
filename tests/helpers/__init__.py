"""Reusable test helpers and fixtures (import the fixtures into a test module to use them)."""
