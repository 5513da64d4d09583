from django.conf import settings
from django.db import models


class LFType(models.TextChoices):
    SIMILARITY_TEXT = "similarity_text"
    SIMILARITY_IMAGE = "similarity_image"
    SIMILARITY_PATCH = "similarity_patch"
    MODEL = "model"
    PATTERN = "pattern"


SIMILARITY_TYPES = (LFType.SIMILARITY_TEXT, LFType.SIMILARITY_IMAGE, LFType.SIMILARITY_PATCH)


class LabelingFunction(models.Model):
    """A rule voting PRESENT / ABSENT / ABSTAIN for one class: score >= high -> PRESENT, score <= low -> ABSENT
    (swapped when inverted). Its votes are materialized whenever the rule or the data changes."""

    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="lfs")
    label_class = models.ForeignKey("datasets.LabelClass", on_delete=models.CASCADE, related_name="lfs")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=32, choices=LFType.choices)
    config = models.JSONField(default=dict)
    low = models.FloatField(null=True, blank=True)
    high = models.FloatField(null=True, blank=True)
    invert = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Grows with every edit: a stale edit (If-Match / version) is refused with 409.
    version = models.PositiveIntegerField(default=1)
    # The embedding encoder a similarity LF scores with (its vectors never mix with another encoder's).
    encoder = models.CharField(max_length=200, blank=True, default="")
    # Non-abstain votes as two ascending int64 id arrays (PRESENT then ABSENT), for summaries and the label model.
    votes_present = models.BinaryField(default=b"")
    votes_absent = models.BinaryField(default=b"")
    votes_updated_at = models.DateTimeField(null=True, blank=True)
    # Why the last refresh could not score it on changed data (its votes there were withdrawn); "" when current.
    refresh_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="unique_lf_name")]

    def __str__(self):
        return self.name


class LFVote(models.Model):
    """A materialized non-abstain vote, so the samples list can filter by votes in SQL.

    Written by the hundred thousand at once: no database foreign-key checks (their deferred checks cost more
    than the COPY; deletes still cascade through Django) and one index, the key (sample first: the filters
    look votes up by sample). On Postgres the table is partitioned by LF (see vote_rows.py): an LF's votes are
    one partition, where lf_id is constant, so the key serves lookups by LF too.
    """

    pk = models.CompositePrimaryKey("sample", "lf")
    sample = models.ForeignKey("datasets.Sample", on_delete=models.CASCADE, related_name="lf_votes",
                               db_constraint=False, db_index=False)
    lf = models.ForeignKey(LabelingFunction, on_delete=models.CASCADE, related_name="vote_rows",
                           db_constraint=False, db_index=False)
    vote = models.SmallIntegerField()  # 1 PRESENT, -1 ABSENT
