from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import AsciiIntegerField, StrictCharField, StrictModelSerializer
from imagestudio.datasets.models import Dataset, DatasetMembership, LabelClass, Role, Split

NAME_MAX = 100


DESCRIPTION_MAX = 10_000  # characters of a dataset's or a class's description


class GroundTruthCountsSerializer(serializers.Serializer):
    present = AsciiIntegerField()
    absent = AsciiIntegerField()
    unlabeled = AsciiIntegerField()


class LabelClassSerializer(StrictModelSerializer):
    counts = serializers.SerializerMethodField(help_text="Ground truth per split: present, absent, unlabeled.")

    class Meta:
        model = LabelClass
        fields = ["id", "name", "description", "counts", "created_at"]
        read_only_fields = ["id", "counts", "created_at"]
        extra_kwargs = {"description": {"max_length": DESCRIPTION_MAX}}

    @extend_schema_field(serializers.DictField(child=GroundTruthCountsSerializer()))
    def get_counts(self, label_class):
        # Served from the counters the annotation services keep, never from a scan of the samples.
        rows = {row.split: row for row in label_class.counts.all()}
        counts = {}
        for split, total in label_class.dataset.split_counts.items():
            row = rows.get(split)
            present, absent = (row.present, row.absent) if row else (0, 0)
            counts[split] = {"present": present, "absent": absent, "unlabeled": total - present - absent}
        return counts


class SplitCountsSerializer(serializers.Serializer):
    train = AsciiIntegerField()
    dev = AsciiIntegerField()
    valid = AsciiIntegerField()
    test = AsciiIntegerField()


class DatasetSerializer(StrictModelSerializer):
    classes = LabelClassSerializer(many=True, read_only=True)
    split_counts = SplitCountsSerializer(read_only=True)
    sample_count = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "classes", "split_counts", "sample_count", "auto_embed", "auto_train",
                  "role", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_sample_count(self, dataset) -> int:
        return sum(dataset.split_counts.values())

    def get_role(self, dataset) -> Role | None:
        """The caller's role on the dataset (superusers act as owners)."""
        if self.context.get("is_superuser"):
            return Role.OWNER
        return self.context.get("roles", {}).get(dataset.id)


class DatasetCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, default="", max_length=DESCRIPTION_MAX)
    classes = serializers.ListField(
        child=StrictCharField(max_length=NAME_MAX), required=False, default=list, max_length=1000,
        help_text="Names of the dataset's first label classes.",
    )
    auto_embed = serializers.BooleanField(required=False, default=False,
                                          help_text="Embed newly imported images automatically.")
    auto_train = serializers.BooleanField(required=False, default=False,
                                          help_text="Retrain a class's fast model when its active LFs change.")


class DatasetUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=DESCRIPTION_MAX)
    auto_embed = serializers.BooleanField(required=False)
    auto_train = serializers.BooleanField(required=False)


class MembershipSerializer(StrictModelSerializer):
    username = StrictCharField(source="user.username",
                                     help_text="Required. 150 characters or fewer. Letters, digits and @/./+/-/_ only.")
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = DatasetMembership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = ["id", "created_at"]


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ResampleParamsSerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices)
    sample_size = AsciiIntegerField(min_value=1, max_value=10_000_000)
    max_labeled = AsciiIntegerField(min_value=0, max_value=10_000_000, required=False, allow_null=True,
                                           default=None)
    min_per_class = AsciiIntegerField(min_value=0, max_value=1_000_000, required=False, default=0)
    seed = AsciiIntegerField(min_value=0, max_value=2**63 - 1, required=False, default=0)


class ClassCountsSerializer(serializers.Serializer):
    present = AsciiIntegerField()
    absent = AsciiIntegerField()


class RealizedSerializer(serializers.Serializer):
    available = AsciiIntegerField(help_text="Samples in the split.")
    total = AsciiIntegerField()
    labeled = AsciiIntegerField()
    unlabeled = AsciiIntegerField()
    per_class = serializers.DictField(child=ClassCountsSerializer())


class ResampleSerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices)
    sample_size = AsciiIntegerField()
    max_labeled = AsciiIntegerField(allow_null=True)
    min_per_class = AsciiIntegerField()
    seed = AsciiIntegerField()
    realized = RealizedSerializer(help_text="What the sample held when drawn.")
    current = RealizedSerializer(help_text="What it holds now: its samples still in the split, with their ground "
                                           "truth now.")
    shortfall = serializers.SerializerMethodField(
        help_text="Per class, how many PRESENT samples the draw lacked of min_per_class (the split held no more); "
                  "only the classes that fell short.")
    created_at = serializers.DateTimeField()

    def get_shortfall(self, resample) -> dict[str, int]:
        wanted = resample.min_per_class
        return {name: wanted - row["present"] for name, row in resample.realized["per_class"].items()
                if row["present"] < wanted}
