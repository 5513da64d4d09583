from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "imagestudio.jobs"
    label = "jobs"
