"""The backend conformance suite on the in-memory reference backend."""

from __future__ import annotations

import pytest

from taskmill.backends.base import Backend
from taskmill.backends.memory import MemoryBackend
from taskmill.testing.conformance import BackendConformance


class TestMemoryConformance(BackendConformance):
    @pytest.fixture
    def url(self) -> str:
        return "memory://"

    def connect(self, url: str) -> Backend:
        # Each memory:// open is a private store: a test's "second connection" shares the first.
        store: MemoryBackend | None = getattr(self, "_store", None)
        if store is None:
            store = self._store = MemoryBackend(url)
        return store
