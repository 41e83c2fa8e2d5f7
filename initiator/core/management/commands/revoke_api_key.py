from django.core.management.base import BaseCommand, CommandError

from core.services import ApiKeyError, api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key (by the id list_api_keys shows): it is refused from the next request on."

    def add_arguments(self, parser) -> None:
        parser.add_argument("api_key_id", type=int)

    def handle(self, *args, api_key_id: int, **options) -> None:
        try:
            api_key = api_key_revoke(api_key_id=api_key_id)
        except ApiKeyError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"API key {api_key.id} ({api_key.prefix}…, {api_key.name!r}) revoked at {api_key.revoked_at}")
