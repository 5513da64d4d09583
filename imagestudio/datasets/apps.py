from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "imagestudio.datasets"
    label = "datasets"
