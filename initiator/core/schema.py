"""OpenAPI: the API-key scheme, and hooks that keep the document to what the public API is and accepts."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

# Called by Google Cloud with OIDC tokens (Pub/Sub push, Cloud Scheduler), not by API clients.
PLATFORM_PATH_PREFIXES = ("/pubsub/", "/internal/")


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "core.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A BinPay API key: `Authorization: Bearer bpk_...`. Each operation lists the scopes it needs; a key "
                "bound to one user sees only that user and its payments (other users' objects answer 404)."
            ),
        }


def public_endpoints_only(endpoints):
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith(PLATFORM_PATH_PREFIXES)]


def refuse_unknown_request_properties(result, generator, request, public):
    """Request bodies refuse parameters they do not define (core.serializers.StrictSerializer), and a form
    sends an object parameter Stripe-style, as metadata[key]=value (OpenAPI: deepObject)."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, component in schemas.items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            form = operation.get("requestBody", {}).get("content", {}).get("application/x-www-form-urlencoded")
            if not form or "$ref" not in form["schema"]:
                continue
            component = schemas[form["schema"]["$ref"].rsplit("/", 1)[-1]]
            objects = [name for name, field in component["properties"].items() if field.get("type") == "object"]
            if objects:
                form["encoding"] = {name: {"style": "deepObject", "explode": True} for name in objects}
    return result
