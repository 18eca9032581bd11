"""Shared test set-up: caplog sees the same bound log fields as the JSON handler."""

from __future__ import annotations

import pytest

from receiver.logs import ContextFilter


@pytest.fixture(autouse=True)
def _context_fields_in_caplog(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(ContextFilter())
