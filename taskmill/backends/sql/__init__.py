"""Named SQL queries, one file per dialect: `-- name: claim` starts the query called "claim", and
`{query:apply}` inside a query stands for the query "apply" (without its semicolon)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_INCLUDE = re.compile(r"\{query:(\w+)\}")


@cache
def queries(dialect: str) -> dict[str, str]:
    """The queries of `dialect` by name (read once)."""
    text = resources.files(__package__).joinpath(dialect, "queries.sql").read_text("utf-8")
    parts = _NAME.split(text)
    found = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    return {name: _INCLUDE.sub(lambda m: found[m[1]].rstrip(";"), body)
            for name, body in found.items()}
