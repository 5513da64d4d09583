"""Content negotiation for routes whose success is a file: an `Accept` naming the file's type (`image/*`, as a
`fetch` for an image sends) must not turn into a 406 because no JSON renderer matches it. The file is served as
is, and an error is answered in JSON whatever the Accept header said."""

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class FileContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
