from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from core.models import SCOPES, USER_BOUND_SCOPES, ApiKey, generate_api_key, hash_api_key

# `create_api_key --name N` without --scopes: a platform backend's key that may do everything except
# mint money (deposits:write must be asked for by name).
DEFAULT_SECRET_KEY_SCOPES = ("payments:write", "payments:read", "users:write", "users:read")


class ApiKeyError(ValueError):
    pass


def _checked_scopes(scopes, user: User | None) -> list[str]:
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    if user is not None:
        refused = [scope for scope in scopes if scope not in USER_BOUND_SCOPES]
        if refused:
            raise ApiKeyError(
                f"a user-bound key cannot hold {', '.join(refused)} (only {', '.join(USER_BOUND_SCOPES)})"
            )
    return [scope for scope in SCOPES if scope in scopes]


@transaction.atomic
def api_key_create(
    *,
    name: str,
    scopes=None,
    user: User | None = None,
    expires_at: datetime | None = None,
    raw_key: str | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key; returns the row and the raw key, which is never stored. Default scopes: a
    user-bound key gets every scope it may hold, a secret key DEFAULT_SECRET_KEY_SCOPES. Default
    expiry: API_KEY_DEFAULT_EXPIRY_DAYS from now."""
    if scopes is None:
        scopes = USER_BOUND_SCOPES if user is not None else DEFAULT_SECRET_KEY_SCOPES
    checked = _checked_scopes(scopes, user)
    if expires_at is None:
        expires_at = timezone.now() + timedelta(days=settings.API_KEY_DEFAULT_EXPIRY_DAYS)
    if expires_at <= timezone.now():
        raise ApiKeyError("the expiry must be in the future")
    raw_key = raw_key or generate_api_key()
    api_key = ApiKey.objects.create(
        name=name,
        prefix=raw_key[:12],
        key_hash=hash_api_key(raw_key),
        scopes=checked,
        user=user,
        expires_at=expires_at,
    )
    return api_key, raw_key


@transaction.atomic
def api_key_ensure(*, name: str, raw_key: str, scopes) -> tuple[ApiKey, bool]:
    """Register a known key once (seed_demo --api-key) with these scopes; returns (row, created)."""
    existing = ApiKey.objects.select_for_update().filter(key_hash=hash_api_key(raw_key)).first()
    if existing is not None:
        existing.scopes = _checked_scopes(scopes, existing.user)
        # A development key registered at every `make run`: its expiry moves with it.
        existing.expires_at = timezone.now() + timedelta(days=settings.API_KEY_DEFAULT_EXPIRY_DAYS)
        existing.save(update_fields=["scopes", "expires_at"])
        return existing, False
    api_key, _ = api_key_create(name=name, raw_key=raw_key, scopes=scopes)
    return api_key, True


@transaction.atomic
def api_key_revoke(*, api_key_id: int) -> ApiKey:
    api_key = ApiKey.objects.select_for_update().filter(pk=api_key_id).first()
    if api_key is None:
        raise ApiKeyError(f"no API key {api_key_id}")
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key
