from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "imagestudio.annotations"
    label = "annotations"
