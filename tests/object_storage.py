"""An object store as the service meets one (S3 through django-storages, say): no local path, and url() answers a
presigned URL of its own. It keeps its objects in a folder, so imports and downloads really go through it."""

import hashlib
from urllib.parse import quote

from django.core.files.storage import FileSystemStorage, Storage
from django.utils.deconstruct import deconstructible

PRESIGNED_PREFIX = "https://objects.example.test/bucket/"


@deconstructible
class PresignedObjectStorage(Storage):
    def __init__(self, location=None):
        self.objects = FileSystemStorage(location=location)  # settings.MEDIA_ROOT when None

    def _open(self, name, mode="rb"):
        return self.objects._open(name, mode)

    def _save(self, name, content):
        return self.objects._save(name, content)

    def exists(self, name):
        return self.objects.exists(name)

    def delete(self, name):
        self.objects.delete(name)

    def size(self, name):
        return self.objects.size(name)

    def listdir(self, path):
        return self.objects.listdir(path)

    def url(self, name):
        signature = hashlib.sha256(f"presigned:{name}".encode()).hexdigest()
        return f"{PRESIGNED_PREFIX}{quote(name)}?X-Amz-Expires=900&X-Amz-Signature={signature}"
