from rest_framework import parsers
from rest_framework.exceptions import ParseError

# The deepest body the API takes is {"metadata": {"key": "value"}}; a Pub/Sub push envelope is
# {"message": {"attributes": {...}}}. Anything far deeper is refused before a view sees it.
JSON_MAX_DEPTH = 8


def json_depth_exceeds(document, limit: int) -> bool:
    """Iterative, so a deep document cannot exhaust the stack here either."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


class BoundedJSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested deeper than JSON_MAX_DEPTH with a 400 (json.load itself
    raises RecursionError, not ValueError, for very deep bodies)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            document = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {JSON_MAX_DEPTH} levels") from None
        if json_depth_exceeds(document, JSON_MAX_DEPTH):
            raise ParseError(f"JSON parse error - nested deeper than {JSON_MAX_DEPTH} levels")
        return document
