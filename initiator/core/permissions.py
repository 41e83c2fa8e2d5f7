"""Scopes: each API view says which scopes each of its methods needs (`required_scopes`)."""

from django.core.exceptions import ImproperlyConfigured
from rest_framework import permissions

from core.errors import insufficient_scope
from core.models import ApiKey


def required_scopes_for(view, method: str) -> tuple[str, ...] | None:
    """`required_scopes` is either one tuple for every method or a {"GET": (...), "POST": (...)} dict.
    None: the view serves no such method (it answers 405)."""
    declared = getattr(view, "required_scopes", None)
    if declared is None:
        raise ImproperlyConfigured(f"{type(view).__name__} uses HasRequiredScopes but declares no required_scopes")
    method = "GET" if method == "HEAD" else method
    if not isinstance(declared, dict):
        return tuple(declared)
    if method in declared:
        return tuple(declared[method])
    if method != "OPTIONS" and hasattr(view, method.lower()):
        raise ImproperlyConfigured(f"{type(view).__name__}.{method.lower()} has no required_scopes")
    return None


class HasRequiredScopes(permissions.BasePermission):
    """An API key holding every scope the view requires for the method; else 401 (no key) or 403."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiKey):
            return False  # DRF answers 401 when no key was given
        required = required_scopes_for(view, request.method)
        if required is None:
            return True
        missing = [scope for scope in required if scope not in request.auth.scopes]
        if missing:
            raise insufficient_scope(missing)
        return True


def acting_user_id(request) -> int | None:
    """The user a user-bound key acts for; None for a secret key (which acts for the platform)."""
    return request.auth.user_id
