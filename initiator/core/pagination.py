from dataclasses import dataclass

from core.errors import invalid_parameter

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


@dataclass(frozen=True)
class PageRequest:
    limit: int
    starting_after: str | None


def page_request_from_query(query) -> PageRequest:
    raw_limit = query.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit not in (None, ""):
        try:
            limit = int(raw_limit)
        except ValueError:
            raise invalid_parameter("limit", "limit must be an integer between 1 and 100.") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid_parameter("limit", "limit must be an integer between 1 and 100.")
    return PageRequest(limit=limit, starting_after=query.get("starting_after") or None)


def list_body(items: list[dict], *, has_more: bool, url: str) -> dict:
    return {"object": "list", "url": url, "data": items, "has_more": has_more}
