from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "imagestudio.labeling"
    label = "labeling"

    def ready(self):
        from .filters import register

        register()
