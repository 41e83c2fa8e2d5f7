from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions

from core.models import ApiKey, hash_api_key
from core.queries import unique_or_none


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <api key>`; the principal is the ApiKey row."""

    keyword = "bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        raw_key = raw_key.strip()
        if scheme.lower() != self.keyword or not raw_key:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <api key>'.")
        api_key = unique_or_none(ApiKey.objects.filter(key_hash=hash_api_key(raw_key)))
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key provided.")
        now = timezone.now()
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.", code="api_key_revoked")
        if api_key.is_expired(now):
            raise exceptions.AuthenticationFailed("This API key has expired.", code="api_key_expired")
        note_use(api_key, now)
        return api_key, api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="binpay"'


def note_use(api_key: ApiKey, now) -> None:
    """Keep last_used_at to within API_KEY_LAST_USED_INTERVAL_SECONDS: at most one UPDATE per key per
    interval, and the condition makes concurrent requests of one key write it once."""
    stale_before = now - timedelta(seconds=settings.API_KEY_LAST_USED_INTERVAL_SECONDS)
    if api_key.last_used_at is not None and api_key.last_used_at > stale_before:
        return
    ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale_before), pk=api_key.pk).update(
        last_used_at=now
    )
    api_key.last_used_at = now
