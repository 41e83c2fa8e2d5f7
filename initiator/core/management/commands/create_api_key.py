from django.core.management.base import BaseCommand

from core.services import api_key_create


class Command(BaseCommand):
    help = "Create a client API key and print it once (only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="Who the key is for.")

    def handle(self, *args, name: str, **options) -> None:
        api_key, raw_key = api_key_create(name=name)
        self.stderr.write(f"API key {api_key.prefix}… created for {name!r}; it is not shown again.")
        self.stdout.write(raw_key)
