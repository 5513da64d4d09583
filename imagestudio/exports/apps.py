from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "imagestudio.exports"
    label = "exports"
