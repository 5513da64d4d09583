"""OPTIONS answers: name, description, what a view renders and parses. The request bodies are in the OpenAPI
schema; describing them again here from serializers fails on views that have none (a 500 on OPTIONS)."""

from rest_framework.metadata import SimpleMetadata


class ApiMetadata(SimpleMetadata):
    def determine_actions(self, request, view):
        return {}
