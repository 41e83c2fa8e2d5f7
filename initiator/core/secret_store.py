"""New API keys go to Secret Manager as a new version of an existing secret (create_api_key --secret-id)."""

from django.conf import settings


class SecretStoreError(RuntimeError):
    pass


def add_secret_version(*, project_id: str, secret_id: str, data: bytes) -> str:
    """Add `data` as the newest version of secret `secret_id`; returns the version's resource name.

    The caller's Application Default Credentials need secretmanager.versions.add on the secret.
    """
    from google.api_core import exceptions
    from google.cloud import secretmanager

    if settings.SECRET_MANAGER_API_ENDPOINT:
        from google.auth.credentials import AnonymousCredentials

        client = secretmanager.SecretManagerServiceClient(
            credentials=AnonymousCredentials(),
            transport="rest",
            client_options={"api_endpoint": settings.SECRET_MANAGER_API_ENDPOINT},
        )
    else:
        client = secretmanager.SecretManagerServiceClient()
    try:
        version = client.add_secret_version(
            request={"parent": client.secret_path(project_id, secret_id), "payload": {"data": data}}, timeout=30
        )
    except exceptions.GoogleAPICallError as error:
        raise SecretStoreError(f"Secret Manager refused a new version of {secret_id!r}: {error.message}") from None
    return version.name
