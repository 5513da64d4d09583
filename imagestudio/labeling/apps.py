from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "imagestudio.labeling"
    label = "labeling"

    def ready(self):
        from django.db.models.signals import pre_delete

        from .filters import register
        from .models import LabelingFunction
        from .vote_rows import rows_table_drop_with

        register()
        # Also when an LF goes with its dataset, which the labeling app does not see otherwise.
        pre_delete.connect(rows_table_drop_with, sender=LabelingFunction, dispatch_uid="lf_vote_partition")
