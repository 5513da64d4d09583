from django.views.generic import TemplateView


class StudioView(TemplateView):
    """The studio's page. It reaches the data only through the REST API, from the browser, like a third party."""

    template_name = "studio/index.html"
    http_method_names = ["get", "head"]
