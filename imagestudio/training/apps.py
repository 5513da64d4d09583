from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "imagestudio.training"
    label = "training"
