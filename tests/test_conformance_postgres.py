"""The backend conformance suite, unchanged, on PostgreSQL: a fresh schema per test."""

from __future__ import annotations

import pytest

from taskmill.testing.conformance import BackendConformance


class TestPostgresConformance(BackendConformance):
    @pytest.fixture
    def url(self, pg_url: str) -> str:
        return pg_url
