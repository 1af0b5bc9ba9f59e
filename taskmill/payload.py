"""The one payload policy of every backend: strict JSON, bounded in size and nesting."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from .errors import PayloadError

DEFAULT_LIMIT = 1 << 20
MAX_DEPTH = 64

encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          sort_keys=True).encode


def _check(value: Any, depth: int, what: str) -> None:
    t = type(value)
    if t is str:
        if "\x00" in value:
            raise PayloadError(f"{what} holds a NUL character, which stores refuse")
        return
    if t is int or t is bool or value is None:
        return
    if t is float:
        if not math.isfinite(value):
            raise PayloadError(f"{what} holds {value!r}, which is not JSON")
        return
    if depth >= MAX_DEPTH:
        raise PayloadError(f"{what} is nested deeper than {MAX_DEPTH} levels")
    if t is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise PayloadError(f"{what} has a key {key!r} that is not a string")
            _check(key, depth + 1, what)
            _check(item, depth + 1, what)
        return
    if t is list or t is tuple:
        for item in value:
            _check(item, depth + 1, what)
        return
    raise PayloadError(f"{what} holds a {t.__name__}, which is not JSON")


def dumps(value: Any, what: str = "value", limit: int = DEFAULT_LIMIT) -> str:
    """`value` as compact JSON text, or `PayloadError` if it breaks the policy."""
    t = type(value)
    if (t is list or t is dict) and not value and limit >= 2:
        return "[]" if t is list else "{}"  # the usual arguments of a job, without the encoder
    _check(value, 0, what)
    text = encode(value)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise PayloadError(f"{what} holds a lone surrogate, which is not valid Unicode") from None
    if size > limit:
        raise PayloadError(f"{what} is {size} bytes, over the {limit}-byte limit")
    return text


def storable_text(text: str) -> str:
    """`text` as every store can keep it: NUL and lone surrogates written out as escapes. For text
    taskmill records on its own (log lines, error messages), which must never be refused."""
    text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def encode_unchecked(value: Any) -> str | None:
    """Canonical JSON text of a value already checked (or None for None): sorted keys, compact."""
    if value is None:
        return None
    t = type(value)
    if (t is list or t is dict) and not value:
        return "[]" if t is list else "{}"
    return encode(value)


class SharedTexts:
    """The JSON texts of values that many jobs share and no one changes (a task's retry policy:
    every job built from a task holds its definition's policy object), memoised by identity.
    Holds the values it keeps a text of, so an id is never reused while cached; bounded."""

    def __init__(self, encoder: Callable[[Any], str | None], size: int = 256) -> None:
        self._encode = encoder
        self._size = size
        self._texts: dict[int, tuple[Any, str | None]] = {}

    def __call__(self, value: Any) -> str | None:
        entry = self._texts.get(id(value))
        if entry is not None and entry[0] is value:
            return entry[1]
        text = self._encode(value)
        if len(self._texts) >= self._size:
            self._texts.clear()
        self._texts[id(value)] = (value, text)
        return text


def loads(text: str | None) -> Any:
    if text is None:
        return None
    if text == "[]" or text == "{}":
        return [] if text == "[]" else {}  # a fresh one each time, as json.loads gives
    return json.loads(text)
