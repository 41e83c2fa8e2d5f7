"""Issue 22 (L5): /openapi.json is the committed document, read once, not a schema generated per request."""

import json
from unittest import mock

from django.test import Client, SimpleTestCase

from testing.fixtures import INITIATOR_DIR


class ServedDocumentTests(SimpleTestCase):
    def test_served_without_generating_a_schema(self) -> None:
        # The generator fails if anything calls it: the request must not.
        with mock.patch(
            "drf_spectacular.generators.SchemaGenerator.get_schema", side_effect=AssertionError("schema generated")
        ):
            response = Client(HTTP_HOST="localhost").get("/openapi.json")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(json.loads(response.content), json.loads((INITIATOR_DIR / "openapi.json").read_text()))
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertIn("max-age", response["Cache-Control"])
