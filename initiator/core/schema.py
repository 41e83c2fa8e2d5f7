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


# OpenAPI links: which answer's ids the next call can use (clients, and schemathesis' stateful run).
LINKS = {
    ("users_create", "201"): {
        "GetUser": ("users_retrieve", {"user_id": "$response.body#/id"}, None),
        "Deposit": ("deposits_create", {"user_id": "$response.body#/id"}, None),
        "ListDeposits": ("deposits_list", {"user_id": "$response.body#/id"}, None),
        "ListPayments": ("users_payments_list", {"user_id": "$response.body#/id"}, None),
        "Pay": ("payments_initiate", {}, {"user_id": "$response.body#/id"}),
    },
    ("deposits_create", "201"): {
        "GetUser": ("users_retrieve", {"user_id": "$response.body#/user_id"}, None),
        "ListDeposits": ("deposits_list", {"user_id": "$response.body#/user_id"}, None),
        "Pay": (
            "payments_initiate",
            {},
            {"user_id": "$response.body#/user_id", "currency": "$response.body#/currency"},
        ),
    },
    ("payments_initiate", "202"): {
        "GetPayment": ("payments_retrieve", {"payment_id": "$response.body#/id"}, None),
        "ListPayments": ("users_payments_list", {"user_id": "$response.body#/user_id"}, None),
        "GetUser": ("users_retrieve", {"user_id": "$response.body#/user_id"}, None),
    },
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


def add_limit_responses(result, generator, request, public):
    """Every operation may be refused for its body size (413) or a spent budget (429, Retry-After)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if operation.get("requestBody"):
                responses.setdefault(
                    "413", {"description": "The body is over REQUEST_BODY_MAX_BYTES.", "content": error}
                )
            responses.setdefault(
                "429",
                {
                    "description": "Rate limited (per API key and per client address; reads and writes apart).",
                    "headers": {
                        "Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait."}
                    },
                    "content": error,
                },
            )
    return result


def add_links(result, generator, request, public):
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for status_code, response in operation.get("responses", {}).items():
                links = LINKS.get((operation.get("operationId"), status_code))
                if links:
                    response["links"] = {
                        name: {
                            "operationId": target,
                            **({"parameters": parameters} if parameters else {}),
                            **({"requestBody": body} if body else {}),
                        }
                        for name, (target, parameters, body) in links.items()
                    }
    return result
