from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "imagestudio.annotations"
    label = "annotations"

    def ready(self):
        from .filters import register
        from .services import signals_connect

        register()
        signals_connect()
