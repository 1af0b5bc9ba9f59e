"""The backend conformance suite: one body of tests that every store passes, unchanged.

To run it on a backend, subclass `BackendConformance` in a test module and give it a fixture `url`
that returns the URL of a fresh, empty store of that backend, in its own namespace (a temp file, a
PostgreSQL schema, a Redis key prefix), so tests can run in parallel:

    from taskmill.testing.conformance import BackendConformance

    class TestRedisConformance(BackendConformance):
        @pytest.fixture
        def url(self, redis_url: str) -> str:
            return redis_url

That is the whole contract. Override `connect(url)` only if opening one URL twice does not reach
one store (memory:// does not: each open is a new, private store).

The suite is split by operation family, one class each (`EnqueueConformance`, `ClaimConformance`,
`FinishConformance`, `LeaseConformance`, `InspectionConformance`, `OperatorConformance`,
`SchedulingConformance`, `PeriodicConformance`, `PayloadConformance`, `LifecycleConformance`);
`BackendConformance` is all of them, and a family can be subclassed alone while a backend grows.

Beyond the docstrings of `taskmill.backends.base`, the suite holds a backend to what users
count on, among others: ids are strings, never reused, and list newest first; a page cursor
stays right while jobs come and go; times come back in UTC, to the microsecond; `expired()`
gives the oldest lease first; `get()` of a malformed id is None; and `apply()` refuses a write
from a running job that would send it back to `scheduled`/`queued` while the store holds a
cancel request the write does not carry (the worker had not seen the cancel yet), so a cancel
of a running job is never lost: the rescue ends it `cancelled` once its lease runs out.

Time never comes from the wall clock: backend methods get explicit `now` values (offsets from
`T0`), and the `Mill` runs on a `FakeClock`, so an hour's retry is tested in a millisecond. Tests
go through the `Backend` methods where the contract is the backend's, and through `Mill` (with a
few registered tasks) where it is the facade's.
"""

from __future__ import annotations

# The family classes; and the suite's helpers, imported `as` themselves and kept out of __all__, so
# that whatever could be imported from the suite when it was one module still can be.
from ._base import CANCELLED as CANCELLED
from ._base import FAILED as FAILED
from ._base import QUEUED as QUEUED
from ._base import RUNNING as RUNNING
from ._base import SCHEDULED as SCHEDULED
from ._base import STORED_FIELDS as STORED_FIELDS
from ._base import SUCCEEDED as SUCCEEDED
from ._base import T0, at
from ._base import build as build
from ._base import claim as claim
from ._base import claim_one as claim_one
from ._base import counts as counts
from ._base import echo as echo
from ._base import everything as everything
from ._base import finish as finish
from ._base import ids as ids
from ._base import in_threads as in_threads
from ._base import noop as noop
from ._base import other as other
from ._base import put as put
from ._base import slow as slow
from ._base import snapshot as snapshot
from ._base import stored as stored
from .claim import ClaimConformance
from .enqueue import EnqueueConformance
from .finish import FinishConformance
from .inspection import InspectionConformance
from .leases import LeaseConformance
from .lifecycle import LifecycleConformance
from .operator import OperatorConformance
from .payload import PAYLOAD as PAYLOAD
from .payload import PayloadConformance
from .payload import typed as typed
from .scheduling import PeriodicConformance, SchedulingConformance


class BackendConformance(EnqueueConformance, ClaimConformance, FinishConformance, LeaseConformance,
                         InspectionConformance, OperatorConformance, SchedulingConformance,
                         PeriodicConformance, PayloadConformance, LifecycleConformance):
    """The whole suite. Subclass it with a fixture `url` (see the module docstring)."""


__all__ = [
    "T0", "BackendConformance", "ClaimConformance", "EnqueueConformance", "FinishConformance",
    "InspectionConformance", "LeaseConformance", "LifecycleConformance", "OperatorConformance",
    "PayloadConformance", "PeriodicConformance", "SchedulingConformance", "at",
]

