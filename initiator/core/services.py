from django.db import transaction

from core.models import ApiKey, generate_api_key, hash_api_key


@transaction.atomic
def api_key_create(*, name: str, raw_key: str | None = None) -> tuple[ApiKey, str]:
    """Create an API key; returns the row and the raw key, which is never stored."""
    raw_key = raw_key or generate_api_key()
    api_key = ApiKey.objects.create(name=name, prefix=raw_key[:12], key_hash=hash_api_key(raw_key))
    return api_key, raw_key


@transaction.atomic
def api_key_ensure(*, name: str, raw_key: str) -> tuple[ApiKey, bool]:
    """Register a known key once (seed_demo --api-key); returns (row, created)."""
    existing = ApiKey.objects.filter(key_hash=hash_api_key(raw_key)).first()
    if existing is not None:
        return existing, False
    api_key, _ = api_key_create(name=name, raw_key=raw_key)
    return api_key, True
