"""Writes of ground truth. Every change leaves an AnnotationEvent (who, when, old -> new)."""

from .models import Annotation, AnnotationEvent, AnnotationSource, GroundTruthValue


def annotations_import(*, dataset, user, rows):
    """Ground truth that arrives with newly imported samples: (sample_id, label_class, value) triples.

    The samples are new, so there is nothing to overwrite; called inside the import's transaction.
    Returns the number of annotations written.
    """
    rows = [(sample_id, label_class, value) for sample_id, label_class, value in rows
            if value in (GroundTruthValue.PRESENT, GroundTruthValue.ABSENT)]
    if not rows:
        return 0
    Annotation.objects.bulk_create(
        [Annotation(sample_id=sample_id, label_class=label_class, value=value, updated_by=user)
         for sample_id, label_class, value in rows]
    )
    AnnotationEvent.objects.bulk_create(
        [AnnotationEvent(dataset=dataset, sample_id=sample_id, label_class=label_class,
                         old_value=GroundTruthValue.ABSTAIN, new_value=value, user=user,
                         source=AnnotationSource.IMPORT)
         for sample_id, label_class, value in rows]
    )
    return len(rows)
