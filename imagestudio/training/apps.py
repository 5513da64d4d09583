from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "imagestudio.training"
    label = "training"

    def ready(self):
        from . import filters, lf_source

        filters.register()
        lf_source.register()
