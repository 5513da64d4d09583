from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "progress", "dataset", "creator", "created_at", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("id", "message", "error")
    readonly_fields = ("created_at", "started_at", "finished_at", "updated_at")
