from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "imagestudio.labeling"
    label = "labeling"
