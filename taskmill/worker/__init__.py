"""Workers: claim jobs, run them, write their outcomes."""

from .context import Context
from .worker import Worker

__all__ = ["Context", "Worker"]
