from django import forms
from django.contrib import admin

from imagestudio.common.errors import ValidationFailed

from .imports.grants import grantable_directory
from .models import Comment, Dataset, DatasetMembership, ImportGrant, LabelClass, Resample, Sample, Tag


class MembershipInline(admin.TabularInline):
    model = DatasetMembership
    extra = 0
    raw_id_fields = ("user",)


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_by", "split_counts", "created_at")
    search_fields = ("name", "description")
    inlines = [MembershipInline, LabelClassInline]


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "split", "external_id", "format", "width", "height", "created_at")
    list_filter = ("split", "format")
    search_fields = ("external_id", "sha256")
    raw_id_fields = ("dataset", "import_job", "tags")
    list_select_related = ("dataset",)
    show_full_result_count = False  # counting 500K rows on every page is wasted work


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "name")
    search_fields = ("name",)


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ("id", "sample", "author", "created_at")
    raw_id_fields = ("sample",)


@admin.register(Resample)
class ResampleAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "split", "sample_size", "max_labeled", "min_per_class", "seed", "created_at")


class ImportGrantForm(forms.ModelForm):
    class Meta:
        model = ImportGrant
        fields = ("dataset", "user", "path")

    def clean_path(self):
        try:
            return grantable_directory(self.cleaned_data["path"])
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None

    def clean(self):
        cleaned = super().clean()
        if (cleaned.get("dataset") is None) == (cleaned.get("user") is None):
            raise forms.ValidationError("Grant the source to exactly one of a dataset or a user.")
        return cleaned


@admin.register(ImportGrant)
class ImportGrantAdmin(admin.ModelAdmin):
    """Server-side import sources (also `manage.py grant_import_source`)."""

    form = ImportGrantForm
    list_display = ("id", "path", "dataset", "user", "created_by", "created_at")
    search_fields = ("path", "dataset__name", "user__username")
    raw_id_fields = ("dataset", "user")
    list_select_related = ("dataset", "user", "created_by")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
