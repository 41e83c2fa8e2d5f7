import re
from dataclasses import dataclass

from core.errors import invalid_parameter
from core.models import BIGINT_MAX

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
_ID = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)


@dataclass(frozen=True)
class PageRequest:
    limit: int
    starting_after: str | None


def page_request_from_query(query) -> PageRequest:
    raw_limit = query.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not re.fullmatch(r"[0-9]{1,3}", raw_limit, re.ASCII) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise invalid_parameter("limit", "limit must be an integer between 1 and 100.")
        limit = int(raw_limit)
    return PageRequest(limit=limit, starting_after=query.get("starting_after"))


def id_cursor(page: PageRequest, what: str) -> int | None:
    """starting_after as a database id (ASCII digits within the bigint range)."""
    if page.starting_after is None:
        return None
    if not _ID.fullmatch(page.starting_after) or int(page.starting_after) > BIGINT_MAX:
        raise invalid_parameter("starting_after", f"starting_after must be a {what} id.")
    return int(page.starting_after)


def list_body(items: list[dict], *, has_more: bool, url: str) -> dict:
    return {"object": "list", "url": url, "data": items, "has_more": has_more}
