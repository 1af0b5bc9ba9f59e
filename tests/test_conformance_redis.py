"""The backend conformance suite, unchanged, on Redis: a fresh key prefix per test."""

from __future__ import annotations

import pytest

from taskmill.testing.conformance import BackendConformance


class TestRedisConformance(BackendConformance):
    @pytest.fixture
    def url(self, redis_url: str) -> str:
        return redis_url
