from django.contrib import admin

from .models import Comment, Dataset, DatasetMembership, LabelClass, Resample, Sample, Tag


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
