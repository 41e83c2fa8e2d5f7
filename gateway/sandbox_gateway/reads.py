"""GET endpoints: retrieve, list (https://docs.stripe.com/api/pagination) and search.

Lists are newest first, ``{"object": "list", "url", "has_more", "data"}``, paged with
``limit`` (1-100, default 10), ``starting_after`` / ``ending_before`` and filtered by ``created``
(an integer or ``created[gt|gte|lt|lte]``).

Search (https://docs.stripe.com/search, https://docs.stripe.com/api/payment_intents/search) is
eventually consistent: "Don't use search in read-after-write flows ... Under normal operating
conditions, data is searchable in less than a minute. Occasionally, propagation of new or
updated data can be up to an hour behind during outages." The sandbox shows an intent to search
``sandbox_search_lag_seconds`` (sandbox clock) after its creation, then with its current fields.
Supported query terms: ``metadata['key']:'value'``, ``status:'...'``, ``customer:'...'``,
``currency:'...'``, ``amount:N``, joined by ``AND`` or by ``OR`` (not both).
"""

from __future__ import annotations

import json
import re
import sqlite3

from . import errors
from .forms import Params
from .store import public

MAX_LIMIT = 100
_TERM = re.compile(
    r"""^\s*(?:metadata\[(?P<mq>['"])(?P<key>[^'"]+)(?P=mq)\]|(?P<field>status|customer|currency|amount))"""
    r"""\s*:\s*(?:(?P<vq>['"])(?P<value>[^'"]*)(?P=vq)|(?P<number>\d+))\s*$"""
)


def get_object(conn: sqlite3.Connection, object_type: str, object_id: str, kind: str | None = None) -> dict:
    row = conn.execute("SELECT body FROM objects WHERE id = ? AND type = ?", (object_id, object_type)).fetchone()
    if row is None:
        raise errors.no_such(kind or object_type, object_id)
    return public(json.loads(row["body"]))


def get_event(conn: sqlite3.Connection, event_id: str) -> dict:
    row = conn.execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        raise errors.no_such("event", event_id)
    return json.loads(row["body"])


def list_objects(
    conn: sqlite3.Connection, params: Params, *, url: str, object_type: str, filters: tuple[str, ...]
) -> dict:
    where, args = ["type = ?"], [object_type]
    for name in filters:
        value = params.string(name)
        if value is not None:
            where.append(f"{name} = ?")
            args.append(value)
    return _page(conn, params, url=url, table="objects", where=where, args=args)


def list_events(conn: sqlite3.Connection, params: Params) -> dict:
    where, args = [], []
    event_type = params.string("type")
    types = params.string_list("types")
    if event_type is not None and types is not None:
        raise errors.invalid_param("You may pass either type or types, but not both.", "types")
    wanted = [event_type] if event_type is not None else types
    if wanted:
        clauses = []
        for item in wanted:
            if item.endswith(".*"):
                clauses.append("type LIKE ?")
                args.append(item[:-1] + "%")
            else:
                clauses.append("type = ?")
                args.append(item)
        where.append("(" + " OR ".join(clauses) + ")")
    return _page(conn, params, url="/v1/events", table="events", where=where, args=args)


def _page(conn: sqlite3.Connection, params: Params, *, url: str, table: str, where: list, args: list) -> dict:
    limit = _limit(params)
    where, args = list(where), list(args)
    created = params.raw("created")
    if isinstance(created, str):
        where.append("created = ?")
        args.append(_integer(created, "created"))
    elif isinstance(created, dict):
        operators = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        for name, value in created.items():
            if name not in operators or not isinstance(value, str):
                raise errors.invalid_param(f"Invalid created[{name}]", f"created[{name}]")
            where.append(f"created {operators[name]} ?")
            args.append(_integer(value, f"created[{name}]"))
    elif created is not None:
        raise errors.invalid_param("Invalid created", "created")
    starting_after = params.string("starting_after")
    ending_before = params.string("ending_before")
    if starting_after is not None and ending_before is not None:
        raise errors.invalid_param("You may only specify one of starting_after and ending_before.", "ending_before")
    order = "DESC"
    for name, anchor, operator in (("starting_after", starting_after, "<"), ("ending_before", ending_before, ">")):
        if anchor is None:
            continue
        row = conn.execute(f"SELECT seq FROM {table} WHERE id = ?", (anchor,)).fetchone()  # noqa: S608 - fixed names
        if row is None:
            raise errors.no_such("object", anchor, param=name)
        where.append(f"seq {operator} ?")
        args.append(row["seq"])
        order = "ASC" if name == "ending_before" else "DESC"
    params.finish()
    clause = " AND ".join(where) or "1"
    rows = conn.execute(
        f"SELECT body FROM {table} WHERE {clause} ORDER BY seq {order} LIMIT ?",  # noqa: S608 - fixed names
        (*args, limit + 1),
    ).fetchall()
    data = [public(json.loads(row["body"])) for row in rows[:limit]]
    if order == "ASC":
        data.reverse()
    return {"object": "list", "data": data, "has_more": len(rows) > limit, "url": url}


def search_intents(conn: sqlite3.Connection, params: Params, *, now: float, lag_seconds: float) -> dict:
    query = params.string("query", required=True)
    limit = _limit(params)
    page = params.string("page")
    params.finish()
    where, args = _search_clause(query)
    where = f"type = 'payment_intent' AND created <= ? AND ({where})"
    args = [int(now - lag_seconds), *args]
    if page is not None:
        if not page.isdigit():
            raise errors.invalid_param("Invalid page.", "page")
        where += " AND seq < ?"
        args.append(int(page))
    rows = conn.execute(
        f"SELECT seq, body FROM objects WHERE {where} ORDER BY seq DESC LIMIT ?",  # noqa: S608 - built from fixed parts
        (*args, limit + 1),
    ).fetchall()
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "object": "search_result",
        "data": [public(json.loads(row["body"])) for row in rows],
        "has_more": has_more,
        "next_page": str(rows[-1]["seq"]) if has_more else None,
        "url": "/v1/payment_intents/search",
    }


def _search_clause(query: str) -> tuple[str, list]:
    has_and, has_or = " AND " in query, " OR " in query
    if has_and and has_or:
        raise errors.invalid_param("Search queries cannot mix AND and OR.", "query")
    joiner = " OR " if has_or else " AND "
    clauses, args = [], []
    for term in query.split(joiner):
        match = _TERM.match(term)
        if match is None:
            raise errors.invalid_param(f"Unsupported search query term: {term.strip()!r}.", "query")
        if match.group("key") is not None:
            clauses.append("json_extract(body, ?) = ?")
            args.append(f'$.metadata."{match.group("key")}"')
        else:
            clauses.append("json_extract(body, ?) = ?")
            args.append(f"$.{match.group('field')}")
        number = match.group("number")
        args.append(int(number) if number is not None else match.group("value"))
    return joiner.join(clauses), args


def _limit(params: Params) -> int:
    limit = params.integer("limit", minimum=1)
    if limit is not None and limit > MAX_LIMIT:
        raise errors.invalid_param(f"limit must be at most {MAX_LIMIT}.", "limit")
    return limit or 10


def _integer(value: str, param: str) -> int:
    if not re.fullmatch(r"\d+", value):
        raise errors.invalid_param(f"Invalid integer: {value}", param, "parameter_invalid_integer")
    return int(value)
