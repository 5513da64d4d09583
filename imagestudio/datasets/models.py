from django.conf import settings
from django.db import models


class Split(models.TextChoices):
    TRAIN = "train"
    DEV = "dev"
    VALID = "valid"
    TEST = "test"


# Splits as small integers, for arrays aligned to sample ids (matrices, columns, artifacts).
SPLIT_CODES = {split: code for code, split in enumerate(Split.values)}
SPLIT_NAMES = {code: split for split, code in SPLIT_CODES.items()}


class Role(models.TextChoices):
    VIEWER = "viewer"
    ANNOTATOR = "annotator"
    EDITOR = "editor"
    OWNER = "owner"


ROLE_RANK = {Role.VIEWER: 0, Role.ANNOTATOR: 1, Role.EDITOR: 2, Role.OWNER: 3}


def role_at_least(role, required):
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[required]


def empty_split_counts():
    return {split: 0 for split in Split.values}


class Dataset(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Samples per split, kept current by the services that add or remove samples.
    split_counts = models.JSONField(default=empty_split_counts)
    # Grows whenever samples are added or their split / metadata change (key of per-process column caches).
    samples_version = models.PositiveIntegerField(default=0)
    # Grows when ground truth changes other than by label writes (a class deleted with its labels, the counters
    # rebuilt); label writes grow their counters' versions (annotations.GroundTruthCount.version). Caches of ground
    # truth are keyed by both.
    labels_version = models.PositiveBigIntegerField(default=0)
    # Embed newly imported images automatically (a follow-up job after each import).
    auto_embed = models.BooleanField(default=False)
    # Queue a training set and a fast model for a class whenever its active LFs or their thresholds change.
    auto_train = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.name


class DatasetMembership(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "user"], name="unique_membership")]


class LabelClass(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="classes")
    name = models.CharField(max_length=100)
    # names.class_name_key(name): names differing only in case, width or invisible characters are one class
    name_key = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="unique_class_name"),
                       models.UniqueConstraint(fields=["dataset", "name_key"], name="unique_class_name_key")]

    def __str__(self):
        return self.name


class Tag(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="unique_tag_name")]

    def __str__(self):
        return self.name


class Sample(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="samples")
    split = models.CharField(max_length=8, choices=Split.choices)
    external_id = models.CharField(max_length=512)
    file_name = models.CharField(max_length=512)
    # Storage keys (content-addressed by sha256 inside the dataset's folder).
    original = models.CharField(max_length=512)
    thumbnail = models.CharField(max_length=512)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=16)
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    # Lower-cased text of the metadata values, for substring search (trigram-indexed on Postgres).
    search_text = models.TextField(blank=True, default="")
    tags = models.ManyToManyField(Tag, related_name="samples", blank=True)
    import_job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "sha256"], name="unique_sample_content"),
            models.UniqueConstraint(fields=["dataset", "external_id"], name="unique_sample_external_id"),
        ]
        indexes = [
            models.Index(fields=["dataset", "split", "id"], name="sample_dataset_split_id"),
            models.Index(fields=["dataset", "id"], name="sample_dataset_id"),
        ]

    def __str__(self):
        return self.external_id


class Comment(models.Model):
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]


class Resample(models.Model):
    """The active sample of one split: a deterministic subset chosen by size, labeled cap, class minimum and seed."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="resamples")
    split = models.CharField(max_length=8, choices=Split.choices)
    sample_size = models.PositiveIntegerField()
    max_labeled = models.PositiveIntegerField(null=True, blank=True)
    min_per_class = models.PositiveIntegerField(default=0)
    seed = models.BigIntegerField(default=0)
    realized = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "split"], name="one_active_resample_per_split")]


class ResampleMember(models.Model):
    resample = models.ForeignKey(Resample, on_delete=models.CASCADE, related_name="members")
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["resample", "sample"], name="unique_resample_member")]


class ImportGrant(models.Model):
    """A sub-directory of IMPORT_ROOT that server-side imports may read: granted by an operator to one dataset (its
    editors import from it) or to one user (on the datasets that user edits). See imports/grants.py."""

    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.CASCADE, related_name="import_grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="import_grants")
    # Relative to IMPORT_ROOT, POSIX separators, no '.' or '..' parts; "." is the whole root.
    path = models.CharField(max_length=1000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(dataset__isnull=False, user__isnull=True)
                | models.Q(dataset__isnull=True, user__isnull=False),
                name="import_grant_one_grantee",
            ),
            models.UniqueConstraint(fields=["dataset", "path"], condition=models.Q(dataset__isnull=False),
                                    name="unique_dataset_import_grant"),
            models.UniqueConstraint(fields=["user", "path"], condition=models.Q(user__isnull=False),
                                    name="unique_user_import_grant"),
        ]

    def __str__(self):
        grantee = f"dataset {self.dataset_id}" if self.dataset_id else f"user {self.user_id}"
        return f"{self.path} -> {grantee}"
