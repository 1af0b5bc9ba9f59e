"""`ctx`: what a running task sees of its job and uses to report on it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import payload
from ..backends.base import NewLog

if TYPE_CHECKING:
    from ..job import Job
    from ..mill import Mill
    from .writer import Writer

_console = logging.getLogger("taskmill.task")


class JobLogger:
    """A `logging.Logger`-like object whose records are stored with the job (and echoed to the
    `taskmill.task` logger)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def log(self, level: int, msg: object, *args: object, exc_info: Any = None) -> None:
        text = str(msg) % args if args else str(msg)
        if exc_info:
            import traceback

            text += "\n" + "".join(traceback.format_exc() if exc_info is True
                                   else traceback.format_exception(exc_info))
        text = payload.storable_text(text)
        name = logging.getLevelName(level)
        self._ctx._log(name if isinstance(name, str) else str(level), text)
        if _console.isEnabledFor(level):
            _console.log(level, "[job %s %s] %s", self._ctx.job_id, self._ctx.job.task, text)

    def debug(self, msg: object, *args: object) -> None:
        self.log(logging.DEBUG, msg, *args)

    def info(self, msg: object, *args: object) -> None:
        self.log(logging.INFO, msg, *args)

    def warning(self, msg: object, *args: object) -> None:
        self.log(logging.WARNING, msg, *args)

    def error(self, msg: object, *args: object) -> None:
        self.log(logging.ERROR, msg, *args)

    def exception(self, msg: object, *args: object) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=True)

    def critical(self, msg: object, *args: object) -> None:
        self.log(logging.CRITICAL, msg, *args)


class Context:
    """The running job as its task sees it."""

    def __init__(self, mill: Mill, job: Job, writer: Writer | None) -> None:
        self.mill = mill
        self.job = job
        self.job_id = job.id
        self.attempt = job.attempts
        self.owner = job.owner
        self.args = job.args
        self.kwargs = job.kwargs
        self.state = job.state_data
        self.iteration = job.iterations + 1
        self.log = JobLogger(self)
        self._writer = writer
        self._cancel = threading.Event()
        self.shutting_down = False
        self.timed_out = False
        self._deadline = None if job.timeout is None else time.monotonic() + job.timeout
        self._instance: Any = None

    # -- reporting -------------------------------------------------------------------------

    def progress(self, percent: float, message: str | None = None) -> None:
        """Set the job's percent done (0-100) and an optional message, seen by whoever follows it."""
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not (
                0 <= percent <= 100):
            raise ValueError(f"progress is a percentage from 0 to 100, got {percent!r}")
        if message is not None:
            if not isinstance(message, str):
                raise payload.PayloadError("a progress message must be a string")
            payload.dumps(message, "progress message", self.mill.payload_limit)
        self.job.progress, self.job.progress_message = float(percent), message
        if self._writer is not None:
            self._writer.progress(self.job, float(percent), message)

    def _log(self, level: str, message: str) -> None:
        if self._writer is not None:
            self._writer.log(NewLog(self.job_id, self.attempt, self.mill.now(), level, message))

    # -- being told to stop ----------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once the job was asked to stop (a cancel, a timeout or a shutdown)."""
        return self._cancel.is_set()

    def _request_stop(self) -> None:
        self._cancel.set()

    @property
    def time_left(self) -> float | None:
        """Seconds left before the task's timeout (None without one)."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def close_to_timeout(self) -> bool:
        """True when less than 10% of the timeout is left: time to hand over with `Continue`."""
        left = self.time_left
        return left is not None and self.job.timeout is not None and left < 0.1 * self.job.timeout

    # -- children --------------------------------------------------------------------------

    def enqueue(self, task: str, args: Sequence[Any] | None = None,
                kwargs: Mapping[str, Any] | None = None, **options: Any) -> Job:
        """Enqueue a child job: its `parent` is this job, its owner this job's owner by default."""
        options.setdefault("owner", self.owner)
        return self.mill.enqueue(task, args, kwargs, parent=self.job_id, **options)
