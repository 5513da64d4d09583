from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete


def _matrix_gone(sender, instance, **kwargs):
    from .store import cache_drop, matrix_files_remove

    def remove():
        cache_drop(dataset_id=instance.dataset_id, encoder_id=instance.encoder_id)
        matrix_files_remove(dataset_id=instance.dataset_id, encoder_id=instance.encoder_id)

    transaction.on_commit(remove)


class EmbeddingsConfig(AppConfig):
    name = "imagestudio.embeddings"
    label = "embeddings"

    def ready(self):
        # A deleted dataset (or vector set) takes its memory-mapped files with it.
        post_delete.connect(_matrix_gone, sender="embeddings.EmbeddingSet", dispatch_uid="embeddings_matrix_gone")
