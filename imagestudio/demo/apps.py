from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo data and the quick start: the one app above every domain, as it sets all of them up."""

    name = "imagestudio.demo"
    label = "demo"
