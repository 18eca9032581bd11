"""Fixtures of the terraform/ checks (defined in helpers.py)."""

from .helpers import schemas, terraform

__all__ = ["schemas", "terraform"]
