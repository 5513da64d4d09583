import json
import math

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import AsciiIntegerField, NameOrIdField, StrictCharField, StrictModelSerializer
from api.limits import MAX_INT
from api.links import absolute_url
from api.serializers.training import PredictionSerializer
from api.validation import refuse_unknown_keys
from imagestudio.annotations.filters import GT_WORDS
from imagestudio.annotations.models import GroundTruthValue
from imagestudio.common.errors import ValidationFailed
from imagestudio.common.votes import vote_word
from imagestudio.datasets.filters import MAX_FILTER_IDS, filter_parse, samples_select
from imagestudio.datasets.image_urls import ImageSize, ImageUrls
from imagestudio.datasets.imaging import ACCEPTED_FORMATS
from imagestudio.datasets.imports import DuplicatePolicy
from imagestudio.datasets.imports.storable import MAX_TEXT_VALUE, metadata_problem
from imagestudio.datasets.manifest import MAX_METADATA_CHARS, MAX_METADATA_FIELDS
from imagestudio.datasets.models import Sample, Split
from imagestudio.datasets.selectors import COUNT_CAP, MAX_OFFSET, SAMPLE_ORDERINGS, SEARCH_COUNT_CAP
from imagestudio.training.filters import PREDICTION_WORDS
from imagestudio.training.models import PREDICTION_LABELS

MAX_SEARCH = 200
IMAGE_URL_HELP = ("{what}, loadable without a token (an `<img src>`): relative to the API's host, signed and valid for "
                  "at least IMAGE_URL_TTL_SECONDS; or, with object storage, the storage's own (presigned) URL.")
MAX_PAGE = 500
SAMPLE_ORDERING_CHOICES = [*SAMPLE_ORDERINGS, *(f"-{o}" for o in SAMPLE_ORDERINGS)]


def _split_commas(values):
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


class SampleQuerySerializer(serializers.Serializer):
    """Query parameters of the samples list: the same filter language bulk actions take as `filter`."""

    split = serializers.ChoiceField(choices=Split.choices, required=False)
    tag = serializers.ListField(
        child=NameOrIdField(max_length=100), required=False, default=list,
        help_text="Tag name or id; repeat (or separate with commas) to require several.",
    )
    search = StrictCharField(required=False, max_length=MAX_SEARCH,
                                   help_text="Case-insensitive substring of the external id, the file name or any "
                                             "metadata value.")
    gt = serializers.ListField(
        child=StrictCharField(max_length=120), required=False, default=list,
        help_text=f"Ground-truth condition `<class name or id>:<{'|'.join(GT_WORDS)}>`; ABSTAIN means "
        "no label, LABELED any label. Repeat to require several.",
    )
    in_sample = serializers.BooleanField(required=False, default=False,
                                         help_text="Only samples of the active resample.")
    lf_vote = serializers.ListField(
        child=StrictCharField(max_length=40), required=False, default=list,
        help_text="LF vote condition `<lf id>:<PRESENT|ABSENT|ABSTAIN>`; repeat to require several.",
    )
    prediction = serializers.ListField(
        child=StrictCharField(max_length=160), required=False, default=list,
        help_text=f"Model prediction `<model id>:<class>:<{'|'.join(PREDICTION_WORDS)}>`; TP..TN compare with "
                  "ground truth (the model's metrics use split=valid).",
    )
    lf_conflict = serializers.ListField(
        child=NameOrIdField(max_length=120), required=False, default=list,
        help_text="Class name or id: samples on which the class's active LFs disagree.",
    )
    ids = serializers.ListField(child=AsciiIntegerField(min_value=1, max_value=MAX_INT), required=False, allow_null=True,
                                default=None, max_length=MAX_FILTER_IDS)

    def to_internal_value(self, data):
        if isinstance(data, dict) and not hasattr(data, "getlist"):  # a bulk action's `filter`, not a query string:
            refuse_unknown_keys(self, data)  # a misspelt key would widen what it writes
        if hasattr(data, "getlist"):  # query string: repeated or comma-separated values
            plain = {key: data.get(key) for key in data}
            for key in ("tag", "gt", "ids", "lf_vote", "lf_conflict", "prediction"):
                if key in data:
                    plain[key] = _split_commas(data.getlist(key))
            data = plain
        return super().to_internal_value(data)

    def to_filter(self, dataset):
        return filter_parse(dataset=dataset, values=self.validated_data)


class SampleSelectionSerializer(serializers.Serializer):
    """Which samples a bulk action touches: explicit ids, or a samples-list filter."""

    sample_ids = serializers.ListField(child=AsciiIntegerField(min_value=1, max_value=MAX_INT), required=False,
                                       allow_empty=False,
                                       max_length=MAX_FILTER_IDS, help_text=f"At most {MAX_FILTER_IDS} ids.")
    filter = SampleQuerySerializer(required=False, help_text="The samples-list filter language, as an object.")

    def to_internal_value(self, data):
        if isinstance(data, dict):
            refuse_unknown_keys(self, data)
        return super().to_internal_value(data)

    def validate(self, attrs):
        if ("sample_ids" in attrs) == ("filter" in attrs):
            raise serializers.ValidationError({"non_field_errors": ["Give exactly one of 'sample_ids' or 'filter'."]})
        return attrs

    def samples(self, dataset):
        """The chosen samples as a queryset; ids outside the dataset are a 400, not silently dropped. A filter term
        the dataset cannot resolve (an unknown class) is a 400 at its path under `filter`, as a malformed one is."""
        filter_values = self.validated_data.get("filter")
        try:
            return samples_select(dataset=dataset, sample_ids=self.validated_data.get("sample_ids"),
                                  filter_values=filter_values)
        except ValidationFailed as exc:
            if filter_values is None or exc.field not in self.fields["filter"].fields:
                raise
            raise serializers.ValidationError({"filter": {exc.field: [exc.message]}}) from None


class SampleListQuerySerializer(SampleQuerySerializer):
    limit = AsciiIntegerField(required=False, default=50, min_value=1,
                                     help_text=f"Page size, at most {MAX_PAGE} (larger values are capped).")
    offset = AsciiIntegerField(
        # No default in the schema: a generated client would send it with every key page, as the page's position.
        required=False, min_value=0, max_value=10_000_000,
        help_text=f"Rows to skip (0 when absent), at most {MAX_OFFSET:,} (deeper pages go by key: `after` / `before`, "
                  "which the `next` and `previous` links use). With `after` or `before` it only states the page's "
                  "position, for the links, and may be larger; 0 there says nothing.",
    )
    after = AsciiIntegerField(
        required=False, min_value=0, max_value=MAX_INT,
        help_text="Keyset paging, in any ordering: the samples after this sample (its id; the last of the previous "
                  "page). Deep pages cost the same as the first. Under an ordering other than id the sample must "
                  "still exist.",
    )
    before = AsciiIntegerField(
        required=False, min_value=0, max_value=MAX_INT,
        help_text="Keyset paging backwards: the `limit` samples before this sample (the first of the next page).",
    )
    fields = StrictCharField(
        required=False, allow_blank=True, max_length=2000,
        help_text="Comma-separated metadata fields to return; empty returns none; absent returns all.",
    )
    ordering = serializers.ChoiceField(choices=SAMPLE_ORDERING_CHOICES,
                                       required=False, default="id")

    def validate(self, attrs):
        if "after" in attrs and "before" in attrs:
            raise serializers.ValidationError({"before": ["Give 'after' or 'before', not both."]})
        attrs.setdefault("offset", 0)
        if attrs["offset"] > MAX_OFFSET and "after" not in attrs and "before" not in attrs:
            raise serializers.ValidationError({"offset": [
                f"At most {MAX_OFFSET:,} rows are skipped by offset: page deeper with 'after' (the id of the last "
                "sample of the previous page), as the 'next' links do."]})
        attrs["limit"] = min(attrs["limit"], MAX_PAGE)
        return attrs


class SampleSerializer(StrictModelSerializer):
    """A sample in the grid and data views."""

    ground_truth = serializers.SerializerMethodField(help_text="Class name -> PRESENT or ABSENT (absent = ABSTAIN).")
    tags = serializers.SerializerMethodField()
    metadata = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField(help_text=IMAGE_URL_HELP.format(what="The original image"))
    thumbnail_url = serializers.SerializerMethodField(help_text=IMAGE_URL_HELP.format(what="The JPEG thumbnail"))
    format = serializers.ChoiceField(choices=ACCEPTED_FORMATS, read_only=True, help_text="The decoded image format.")

    class Meta:
        model = Sample
        fields = ["id", "split", "external_id", "file_name", "width", "height", "format", "bytes", "metadata",
                  "ground_truth", "tags", "image_url", "thumbnail_url", "created_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(child=serializers.ChoiceField(choices=PREDICTION_LABELS)))
    def get_ground_truth(self, sample):
        return {a.label_class.name: a.value for a in sample.annotations.all() if a.value != GroundTruthValue.ABSTAIN}

    def get_tags(self, sample) -> list[str]:
        return [tag.name for tag in sample.tags.all()]

    def get_metadata(self, sample) -> dict:
        wanted = self.context.get("fields")
        if wanted is None:
            return sample.metadata
        return {key: sample.metadata[key] for key in wanted if key in sample.metadata}

    def _url(self, sample, size, suffix):
        # One reverse() and one expiry per response rather than per row: URLs are a hot spot of the grid view.
        if "_image_urls" not in self.__dict__:
            self._image_urls, self._prefixes = ImageUrls(), {}
        if sample.dataset_id not in self._prefixes:
            self._prefixes[sample.dataset_id] = reverse("sample-list", kwargs={"dataset_id": sample.dataset_id})
        signed = self._image_urls.url(sample, size, f"{self._prefixes[sample.dataset_id]}{sample.pk}/{suffix}/")
        return absolute_url(self.context["request"], signed)

    def get_image_url(self, sample) -> str:
        return self._url(sample, ImageSize.ORIGINAL, "image")

    def get_thumbnail_url(self, sample) -> str:
        return self._url(sample, ImageSize.THUMBNAIL, "thumbnail")


class SamplePageSerializer(serializers.Serializer):
    count = AsciiIntegerField(help_text="Matching samples; a lower bound when count_exact is false.")
    count_exact = serializers.BooleanField(help_text=f"False when a filtered list matches more samples than are "
                                                     f"counted exactly ({COUNT_CAP:,}; {SEARCH_COUNT_CAP:,} with "
                                                     f"`search`).")
    next = StrictCharField(allow_null=True)
    previous = StrictCharField(allow_null=True)
    results = SampleSerializer(many=True)


class CommentSerializer(serializers.Serializer):
    id = AsciiIntegerField(read_only=True)
    author = StrictCharField(source="author.username", read_only=True, allow_null=True)
    body = StrictCharField(max_length=10_000)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class GroundTruthEntrySerializer(serializers.Serializer):
    class_id = AsciiIntegerField(source="label_class_id")
    class_name = StrictCharField(source="label_class.name")
    value = serializers.ChoiceField(choices=GroundTruthValue.choices)
    version = AsciiIntegerField()
    updated_by = StrictCharField(source="updated_by.username", allow_null=True)
    updated_at = serializers.DateTimeField()


class SampleVoteSerializer(serializers.Serializer):
    lf = AsciiIntegerField(source="lf_id")
    name = StrictCharField(source="lf.name")
    label_class = StrictCharField(source="lf.label_class.name")
    vote = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=PREDICTION_LABELS))
    def get_vote(self, row):
        return vote_word(row.vote)


class SampleDetailSerializer(SampleSerializer):
    """The image view: everything about one sample, with the LF votes it received (abstentions omitted) and a
    fast model's predictions (context: `model` and its `predictions` rows for the sample)."""

    annotations = GroundTruthEntrySerializer(many=True, read_only=True)
    comments = CommentSerializer(many=True, read_only=True)
    votes = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField(
        help_text="The model of `?model=`; null without it, when each class's prediction comes from the latest ready "
                  "model of that class (see each prediction's `model`). Null also when the "
                  "dataset has none.")
    predictions = serializers.SerializerMethodField(help_text="Per class; empty when the model did not score the "
                                                              "sample (no embedding when it trained).")

    class Meta(SampleSerializer.Meta):
        fields = [*SampleSerializer.Meta.fields, "sha256", "annotations", "comments", "votes", "model", "predictions"]
        read_only_fields = fields

    @extend_schema_field(SampleVoteSerializer(many=True))
    def get_votes(self, sample):
        return SampleVoteSerializer(self.context.get("votes", []), many=True).data

    def get_model(self, sample) -> int | None:
        model = self.context.get("model")
        return model.id if model else None

    @extend_schema_field(PredictionSerializer(many=True))
    def get_predictions(self, sample):
        return PredictionSerializer(self.context.get("predictions", []), many=True).data


class SampleDetailQuerySerializer(serializers.Serializer):
    model = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT,
                                     help_text="A ready fast model of the dataset (default: per class, the latest "
                                               "ready model trained for it).")


class SampleUpdateSerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices, required=False)
    metadata = serializers.DictField(required=False, help_text=f"Replaces the sample's metadata: at most "
                                     f"{MAX_METADATA_FIELDS} fields, {MAX_METADATA_CHARS:,} characters as JSON; a value "
                                     f"holds at most {MAX_TEXT_VALUE:,} characters (a list or object: its JSON text).")

    def validate_metadata(self, value):
        if problem := metadata_problem(value):
            raise serializers.ValidationError(problem)
        return value


class NonFiniteNumber(ValueError):
    pass


def _not_finite(text):
    raise NonFiniteNumber(text)


def _finite_float(text):
    number = float(text)
    if not math.isfinite(number):  # 1e999
        raise NonFiniteNumber(text)
    return number


class ImportSerializer(serializers.Serializer):
    """Exactly one of `files`, `archive` or `path`."""

    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), required=False,
                                  help_text="Image files (also accepted as `files[]`).")
    archive = serializers.FileField(required=False, allow_empty_file=True, help_text="A zip or tar archive.")
    path = StrictCharField(
        required=False, max_length=1000,
        help_text="A directory or .csv / .jsonl manifest on the server, relative to IMPORT_ROOT, inside an import "
                  "source granted to this dataset or to you (`manage.py grant_import_source`). A path outside every "
                  "grant, one that does not exist and one whose links lead out of its grant all answer the same 400 "
                  "on `path`, so no file's existence shows.")
    manifest = serializers.FileField(required=False, help_text="CSV or JSONL: file, split, external_id, "
                                     "gt:<class> columns, any metadata columns.")
    split = serializers.ChoiceField(choices=Split.choices, default=Split.TRAIN,
                                    help_text="Split of files the manifest does not place.")
    metadata = StrictCharField(required=False, max_length=10_000_000,
                                     help_text=f"JSON object: file name -> metadata object (at most "
                                               f"{MAX_METADATA_FIELDS} fields and {MAX_METADATA_CHARS:,} characters as "
                                               f"JSON; a value holds at most {MAX_TEXT_VALUE:,} characters; a file whose "
                                               "metadata does not fit is refused alone).")
    duplicates = serializers.ChoiceField(
        choices=[policy.value for policy in DuplicatePolicy], default=DuplicatePolicy.KEEP_FIRST.value,
        help_text="A duplicate (same image as a stored sample or an earlier file) whose split, metadata or ground "
                  "truth differ: keep_first keeps the first and reports the conflict; merge adds its metadata keys "
                  "and labels to the first when no value contradicts (else as keep_first); refuse refuses it.",
    )

    def validate_metadata(self, value):
        try:
            parsed = json.loads(value, parse_constant=_not_finite, parse_float=_finite_float)
        except json.JSONDecodeError as exc:
            raise serializers.ValidationError(f"not JSON: {exc.msg}") from None
        except RecursionError:
            raise serializers.ValidationError("nested too deeply") from None
        except NonFiniteNumber as exc:  # JSON has no NaN or Infinity (the job's stored parameters would refuse it)
            raise serializers.ValidationError(f"{exc} is not a finite number") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
            raise serializers.ValidationError("must be a JSON object mapping file names to metadata objects")
        return parsed

    def validate(self, attrs):
        given = [key for key in ("files", "archive", "path") if attrs.get(key)]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"non_field_errors": ["Send exactly one of 'files', 'archive' or 'path'."]}
            )
        if attrs.get("metadata") and not attrs.get("files"):
            raise serializers.ValidationError({"metadata": ["'metadata' goes with 'files'; archives use a manifest."]})
        return attrs
