from django.apps import AppConfig


class EmbeddingsConfig(AppConfig):
    name = "imagestudio.embeddings"
    label = "embeddings"
