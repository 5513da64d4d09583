from urllib.parse import urlencode

from django.urls import reverse
from rest_framework import serializers

from api.fields import AsciiIntegerField, StrictCharField, StrictModelSerializer
from api.limits import MAX_INT
from api.links import absolute_url
from api.serializers.polymorphic import stored
from api.serializers.reports import ExportParamsSerializer
from api.signed_access import ACCESS_PARAM, request_grant
from imagestudio.datasets.models import Split
from imagestudio.exports.access import export_access_token
from imagestudio.exports.models import Export
from imagestudio.exports.services import SAMPLE_COLUMNS


class ExportSerializer(StrictModelSerializer):
    job = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)
    download_url = serializers.SerializerMethodField()
    params = stored(ExportParamsSerializer, read_only=True)

    class Meta:
        model = Export
        fields = ["id", "kind", "params", "rows", "bytes", "ready", "job", "download_url", "created_at"]
        read_only_fields = fields

    def get_download_url(self, export) -> str:
        """With a signed `access` for the user reading it: a link opens the CSV without a token."""
        request = self.context["request"]
        path = reverse("export-download", kwargs={"dataset_id": export.dataset_id, "export_id": export.id})
        token = export_access_token(export=export, user=request.user, grant=request_grant(request))
        return absolute_url(request, f"{path}?{urlencode({ACCESS_PARAM: token})}")


class ExportCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Export.Kind.choices)
    columns = serializers.ListField(child=serializers.ChoiceField(choices=SAMPLE_COLUMNS), required=False,
                                    min_length=1, help_text="Sample columns (default id, external_id, file_name, "
                                                            "split).")
    fields = serializers.ListField(child=StrictCharField(max_length=100), required=False, default=list,
                                   help_text="Metadata fields, one column each.")
    splits = serializers.ListField(child=serializers.ChoiceField(choices=Split.choices), required=False, min_length=1)
    ground_truth = serializers.BooleanField(required=False, default=True, help_text="gt:<class> columns.")
    model = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT,
                                     help_text="dataset exports: pred:<class> and prob:<class> columns of this model.")
    training_set = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT,
                                            help_text="training_labels exports: default the latest ready one "
                                                      "(the ready one last asked for).")
    raw = serializers.BooleanField(required=False, default=False,
                                   help_text="Write text as stored. By default a cell starting with = + - @, a tab or "
                                             "a carriage return (and not a number) gets a leading ' so that a "
                                             "spreadsheet shows it instead of running it.")
