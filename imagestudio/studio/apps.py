from django.apps import AppConfig


class StudioConfig(AppConfig):
    """Studio, the reference web frontend: one page and its static ES modules, built on the public REST API only
    (it imports nothing of the domain or of api/)."""

    name = "imagestudio.studio"
    label = "studio"
