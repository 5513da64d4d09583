from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "imagestudio.training"
    label = "training"

    def ready(self):
        from . import class_names, filters, lf_source

        class_names.register()
        filters.register()
        lf_source.register()
