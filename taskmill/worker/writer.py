"""One thread per worker that writes outcomes, progress and logs in shared transactions.

Completions queue up while a transaction commits, and the next transaction writes them all: the
cost of a commit (an fsync with SQLite FULL) is shared by every job that finished meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ..backends.base import NewLog
from ..errors import BackendUnavailable
from ..job import Job, Update

if TYPE_CHECKING:
    from ..mill import Mill

log = logging.getLogger("taskmill.worker")
Done = Callable[[bool], None]
MAX_BATCH = 500


class Writer:
    def __init__(self, mill: Mill) -> None:
        self.mill = mill
        self._cond = threading.Condition()
        self._updates: deque[tuple[Update, Done | None]] = deque()
        self._progress: dict[str, tuple[Job, float, str | None]] = {}
        self._logs: deque[NewLog] = deque()
        self._busy = False
        self._writing_updates = False
        self._stopping = False
        # How a batch of outcomes is written: the store's `apply`, or the worker's, which also
        # claims the next jobs in the same transaction.
        self.apply: Callable[[list[Update], datetime], list[bool]] | None = None
        self._thread = threading.Thread(target=self._loop, name="taskmill-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def complete(self, update: Update, done: Done | None = None) -> None:
        with self._cond:
            self._updates.append((update, done))
            self._cond.notify_all()  # the writer, and a claim loop waiting for it

    def progress(self, job: Job, percent: float, message: str | None) -> None:
        with self._cond:
            self._progress[job.id] = (job, percent, message)
            self._cond.notify_all()  # the writer, and a claim loop waiting for it

    def log(self, record: NewLog) -> None:
        with self._cond:
            self._logs.append(record)
            self._cond.notify_all()  # the writer, and a claim loop waiting for it

    def has_updates(self) -> bool:
        """Outcomes are waiting or being written."""
        return bool(self._updates) or self._writing_updates

    def wait_updates_written(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until the outcomes handed over so far are written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._updates or self._writing_updates) and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def idle(self) -> bool:
        with self._cond:
            return not (self._busy or self._updates or self._progress or self._logs)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything handed over so far is written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy or self._updates or self._progress or self._logs:
                if not self._thread.is_alive():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stop(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        backoff = 0.1
        while True:
            with self._cond:
                while not (self._updates or self._progress or self._logs or self._stopping):
                    self._cond.wait()
                if self._stopping and not (self._updates or self._progress or self._logs):
                    return
                logs = list(self._logs)
                self._logs.clear()
                progress = list(self._progress.values())
                self._progress.clear()
                batch = [self._updates.popleft() for _ in range(min(MAX_BATCH, len(self._updates)))]
                self._busy = True
                self._writing_updates = bool(batch)
            try:
                self._write(logs, progress, batch)
                backoff = 0.1
            except BackendUnavailable as exc:
                # Nothing is dropped: it goes back in front and is tried again.
                log.warning("cannot write to the store (%s); trying again in %.1fs", exc, backoff)
                with self._cond:
                    self._logs.extendleft(reversed(logs))
                    for job, pct, msg in progress:
                        self._progress.setdefault(job.id, (job, pct, msg))
                    self._updates.extendleft(reversed(batch))
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("the writer failed to write a batch; writing its items one by one")
                self._write_each(logs, progress, batch)
            finally:
                with self._cond:
                    self._busy = self._writing_updates = False
                    self._cond.notify_all()

    def _write_each(self, logs: list[NewLog], progress: list[tuple[Job, float, str | None]],
                    batch: list[tuple[Update, Done | None]]) -> None:
        """After a batch failed for a reason other than the store being away: each item alone, so
        one bad item costs only itself (a refused outcome is left to its lease)."""
        for record in logs:
            with contextlib.suppress(Exception):
                self._write([record], [], [])
        for item in progress:
            with contextlib.suppress(Exception):
                self._write([], [item], [])
        for update, done in batch:
            try:
                self._write([], [], [(update, done)])
            except Exception:
                log.exception("job %s: its outcome cannot be written", update.job.id)
                if done is not None:
                    with contextlib.suppress(Exception):
                        done(False)

    def _write(self, logs: list[NewLog], progress: list[tuple[Job, float, str | None]],
               batch: list[tuple[Update, Done | None]]) -> None:
        backend = self.mill.backend
        if logs:
            backend.append_logs(logs)
        now = self.mill.now()
        for job, pct, msg in progress:
            if job.claim_token is not None:
                backend.set_progress(job.id, job.claim_token, pct, msg, now)
        if batch:
            applied = (self.apply or backend.apply)([u for u, _ in batch], now)
            for (_, done), ok in zip(batch, applied, strict=True):
                if done is not None:
                    try:
                        done(ok)
                    except Exception:
                        log.exception("after-completion callback failed")
