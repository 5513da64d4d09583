from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter


class AutoSchema(SpectacularAutoSchema):
    """Types the nested dataset id in every dataset-scoped path (its name matches no model field)."""

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if "{dataset_id}" in self.path:
            parameters = [
                OpenApiParameter("dataset_id", int, OpenApiParameter.PATH, description="The dataset's id."),
                *parameters,
            ]
        return parameters

    def _is_list_view(self, serializer=None):
        # A list that shapes its own page (count, links, results) answers one object, not an array.
        if getattr(self.view, "pages_itself", False):
            return False
        return super()._is_list_view(serializer)


ERROR_SCHEMA = {
    "type": "object",
    "description": "An error: a human-readable `detail` and a stable machine-readable `code`.",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail", "code"],
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Bad input: messages per field (`non_field_errors` for the request as a whole), "
    "or `detail` and `code`.",
    "additionalProperties": {},
}
STANDARD_ERRORS = {
    "400": ("ValidationError", "Bad input."),
    "401": ("Error", "Missing or invalid credentials (or, for auth/token/, a wrong password)."),
    "403": ("Error", "Your role on the dataset is too low."),
    "404": ("Error", "Not found, or not visible to you."),
}


NOT_MODIFIED = {"description": "Not Modified: the If-None-Match you sent is the current ETag (every GET answer "
                               "carries one)."}
PRECONDITION_FAILED = {
    "description": "Precondition Failed: the If-Match you sent is not the current version; nothing changed. The "
                   "body gives the current `version` and `etag` (also in the ETag header).",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PreconditionFailed"}}},
}
PRECONDITION_FAILED_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string", "enum": ["version_conflict"]},
                   "version": {"type": "integer"}, "etag": {"type": "string"}},
    "required": ["detail", "code", "version", "etag"],
}


def _add_conditional_responses(method, operation):
    """304 on every GET but a stream (ConditionalGetMiddleware); 412 where If-Match is taken."""
    responses = operation.setdefault("responses", {})
    streams = "text/event-stream" in responses.get("200", {}).get("content", {})
    if method == "get" and not streams:
        responses.setdefault("304", NOT_MODIFIED)
    if any(parameter.get("name") == "If-Match" for parameter in operation.get("parameters", ())):
        responses.setdefault("412", PRECONDITION_FAILED)


def add_error_responses(result, generator, request, public):
    """Document the error shape on every operation, so generated clients parse errors too."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["ValidationError"] = VALIDATION_ERROR_SCHEMA
    schemas["PreconditionFailed"] = PRECONDITION_FAILED_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            _add_conditional_responses(method, operation)
        if path.endswith("/health/") or path == "/api/":
            continue  # answer with their own report or links, as declared on the views, and need no database
        public = path.endswith("/auth/token/")  # the one operation that needs no credentials
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, (component, description) in STANDARD_ERRORS.items():
                if public and status in ("403", "404"):
                    continue
                responses.setdefault(status, {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
                })
            if "requestBody" in operation:
                responses.setdefault("415", {
                    "description": "The body's Content-Type is not one this operation reads.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                })
            if public:
                responses.setdefault("429", {
                    "description": "Too many attempts: retry after the delay said.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                })
            # Any operation may meet a state it cannot serve (reads too: a model or export not ready, or failed),
            # and any may find the database or the queue down.
            responses.setdefault("409", {
                "description": "Conflict with the current state (a version, a budget, a missing prerequisite, a "
                               "product not ready or failed).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            })
            responses.setdefault("503", {
                "description": "The database or the task queue is unavailable: retry after the delay said.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            })
    return result
