"""Input the portal will not take, refused before it reaches a view or handler: ids in URLs
beyond their integers; NUL characters (PostgreSQL cannot store them in text); lone surrogates
(no UTF-8 encodes them: the database driver, the token hash and the JSON encoder fail on them);
JSON nested deeper than any request of ours (Python's parser recurses, and 100,000 levels
exhaust it). One check for every way in: query strings, forms, JSON bodies (before_request)
and Socket.IO payloads and connect data (the guard calls `problem`)."""

from __future__ import annotations

import re
from typing import Any

from flask import abort, request
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter, Map

#: The largest id the database can hold (PostgreSQL's integer column).
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<id:name>``: a database id, 1 to MAX_ID. Anything larger cannot name a row, so the
    route does not match (404) instead of overflowing the database driver (a 500 on SQLite)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, min=1, max=MAX_ID)


#: Deepest nesting of JSON the portal accepts: its own documents go three or four levels deep.
MAX_DEPTH = 32

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """How deep the JSON text nests its arrays and objects, without parsing it (brackets inside
    strings do not count)."""
    depth = deepest = 0
    for byte in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return _("Text may not contain NUL characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _("Text may not contain unpaired surrogate characters.")
    return None


def problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a decoded value (JSON-like: dicts, lists, strings, numbers) is refused, in words for
    the sender; None if it is acceptable. Keys are checked like values."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            bad = _bad_text(item)
            if bad:
                return bad
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                return _("The data is nested too deeply.")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def refuse_unacceptable_input() -> None:
    """Before every request: a query parameter, form field or JSON body the portal will not
    take is 400 {code: bad_request}, on every backend alike, rather than a database error or a
    RecursionError (a 500). The JSON API's form is not read (that would consume its body)."""
    bad = problem(list(request.args.items(multi=True)))
    if bad is None and not request.path.startswith("/api/"):
        bad = problem(list(request.form.items(multi=True)))
    if bad is None and request.is_json:
        body = request.get_data(cache=True)
        if json_depth(body) > MAX_DEPTH:
            bad = _("The data is nested too deeply.")
        else:
            bad = problem(request.get_json(silent=True))  # malformed: the view's parser says so
    if bad is not None:
        abort(400, description=bad)
