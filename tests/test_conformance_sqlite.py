"""The backend conformance suite on SQLite: a temp file per test."""

from __future__ import annotations

import pytest

from taskmill.testing.conformance import BackendConformance


class TestSQLiteConformance(BackendConformance):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url
