from django.contrib import admin

from .models import Annotation, AnnotationEvent


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ("id", "sample", "label_class", "value", "version", "updated_by", "updated_at")
    list_filter = ("value",)
    raw_id_fields = ("sample", "label_class")


@admin.register(AnnotationEvent)
class AnnotationEventAdmin(admin.ModelAdmin):
    list_display = ("id", "sample", "label_class", "old_value", "new_value", "user", "source", "created_at")
    list_filter = ("source",)
    raw_id_fields = ("sample", "label_class", "dataset")
