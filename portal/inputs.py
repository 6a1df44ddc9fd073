"""Input the databases cannot hold, refused before it reaches a view: ids in URLs beyond their
integers, and NUL characters, which PostgreSQL cannot store in text."""

from __future__ import annotations

from typing import Any

from flask import abort, request
from werkzeug.routing import IntegerConverter, Map

#: The largest id the database can hold (PostgreSQL's integer column).
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<id:name>``: a database id, 1 to MAX_ID. Anything larger cannot name a row, so the
    route does not match (404) instead of overflowing the database driver (a 500 on SQLite)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, min=1, max=MAX_ID)


def refuse_nul_characters() -> None:
    """Before every page request: a NUL character in a query parameter or form field is 400,
    on every backend alike, rather than a database error on PostgreSQL. The JSON API is left
    to check its own input (reading the form here would consume the body it inspects)."""
    if request.path.startswith("/api/"):
        return
    for values in (request.args, request.form):
        for _key, value in values.items(multi=True):
            if "\x00" in value:
                abort(400)
