"""Conformance, payload: arguments, results and text round-trip as strict JSON; the payload policy."""

from __future__ import annotations

from typing import Any

import pytest

from ...backends.base import Backend, NewLog
from ...errors import PayloadError
from ...job import JobError
from ...mill import Mill
from ...transitions import Continued, Failed, Succeeded
from .. import FakeClock
from ._base import _Store, at, claim_one, finish, noop, put, stored


def typed(value: Any) -> Any:
    """`value` with the type of each scalar beside it: `True` is not `1`, `1.0` is not `1`."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = {"level": level, "down": [value]} if level % 2 else [value]
    return value


PAYLOAD: dict[str, Any] = {
    "unicode": "héllo wörld ✓ 日本語 עברית 🚀 e\u0301 \u2028\u2029 \U0010ffff",
    "escapes": "quote \" backslash \\ slash / newline \n tab \t bell \x07",
    "empty": "",
    "ünïcode kéy 🔑": True,
    "big": 2**64 + 1,
    "negative big": -(2**70),
    "ints": [0, -1, 2**53 + 1, 2**63 - 1, -(2**63)],
    "floats": [0.1, -2.5, 1.0, 1e308, 5e-324, 1.7976931348623157e308, 123456.789e-3],
    "literals": [True, False, None],
    "empties": [[], {}, [[]], {"": {}}],
    "nested": _nested(30),
}


class PayloadConformance(_Store):
    def test_arguments_round_trip_as_strict_json(self, backend: Backend, mill: Mill) -> None:
        # given a job whose arguments hold every kind of JSON value
        args = [PAYLOAD["big"], PAYLOAD["floats"], PAYLOAD["unicode"], None, True]
        job = put(backend, mill, at(0), args=args, kwargs=PAYLOAD)
        # when it is read back
        got = stored(backend, job.id)
        # then the arguments are equal, and of the same types (a bool is not an int, 1.0 not 1)
        assert (got.args, got.kwargs) == (args, PAYLOAD)
        assert (typed(got.args), typed(got.kwargs)) == (typed(args), typed(PAYLOAD))

    def test_results_state_and_errors_round_trip_as_strict_json(
            self, backend: Backend, mill: Mill) -> None:
        put(backend, mill, at(0))
        # a run that continues keeps its state
        running = claim_one(backend, at(0))
        assert finish(backend, running, Continued(PAYLOAD), at(1))
        assert typed(stored(backend, running.id).state_data) == typed(PAYLOAD)
        # a failed attempt keeps its error, in any script
        running = claim_one(backend, at(1), token="t2")
        error = JobError("ValueError", "bad «row» ✓", "Traceback\n  «файл» 🚀\nValueError: bad «row» ✓")
        assert finish(backend, running, Failed(error, retryable=True, delay=0), at(2))
        assert stored(backend, running.id).error == error
        # and the result of a success comes back as it was
        backend.promote_due(at(2), 10)
        running = claim_one(backend, at(2), token="t3")
        assert finish(backend, running, Succeeded(PAYLOAD), at(3))
        got = stored(backend, running.id)
        assert typed(got.result) == typed(PAYLOAD)

    def test_scalar_results_round_trip_with_their_type(self, backend: Backend, mill: Mill) -> None:
        # given results of each JSON type, then each comes back with its type
        results: list[Any] = [None, 0, 1.0, -0.5, True, "", "text", [], {}, 2**63]
        for n, result in enumerate(results):
            put(backend, mill, at(n))
            running = claim_one(backend, at(n), token=f"t{n}")
            assert finish(backend, running, Succeeded(result), at(n))
            assert typed(stored(backend, running.id).result) == typed(result)

    def test_progress_messages_log_lines_and_reasons_keep_their_text(
            self, backend: Backend, mill: Mill) -> None:
        # given a running job, and text in several scripts, with quotes and a newline
        job = mill.enqueue("noop")
        running = claim_one(backend, at(0))
        text = "½ done ✓ 🚀\nline two \"quoted\" \\ עברית"
        # when it is written as a progress message, a log line and a cancel reason
        assert backend.set_progress(job.id, running.claim_token or "", 50.0, text, at(1))
        backend.append_logs([NewLog(job.id, 1, at(1), "INFO", text)])
        mill.cancel(job.id, text)
        # then each reads back as written
        got = stored(backend, job.id)
        assert (got.progress_message, got.cancel_reason) == (text, text)
        assert [r.message for r in backend.logs(job.id, None)] == [text]

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), "nul \x00 char", "lone \ud800",
                                     {1: "int key"}, {"set": {1, 2}}, _nested(70)],
                             ids=["nan", "infinity", "nul", "surrogate", "int-key", "set", "too-deep"])
    def test_a_payload_that_breaks_the_policy_is_refused_and_nothing_is_stored(
            self, mill: Mill, bad: Any) -> None:
        # when a value that is not strict JSON is enqueued, alone or in a batch, it is refused
        with pytest.raises(PayloadError):
            mill.enqueue("noop", kwargs={"value": bad})
        with pytest.raises(PayloadError):
            mill.enqueue_many([{"task": "noop"}, {"task": "noop", "args": [bad]}])
        # then nothing is stored
        assert mill.jobs() == []

    def test_a_payload_over_the_size_limit_is_refused(self, url: str, backend: Backend,
                                                     clock: FakeClock) -> None:
        # given a mill that takes payloads of up to 1000 bytes
        mill = Mill(url, clock=clock, backend=backend, payload_limit=1000)
        mill.task(noop)
        # then a payload within it is stored, one over it refused
        mill.enqueue("noop", args=["x" * 900])
        with pytest.raises(PayloadError):
            mill.enqueue("noop", args=["x" * 1001])
        assert len(mill.jobs()) == 1

