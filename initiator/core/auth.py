from rest_framework import authentication, exceptions

from core.models import ApiKey, hash_api_key


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
        api_key = ApiKey.objects.filter(key_hash=hash_api_key(raw_key), revoked_at__isnull=True).first()
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key provided.")
        return api_key, api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="binpay"'
