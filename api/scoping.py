"""One place that scopes every dataset resource to the caller: strangers get 404, low roles 403."""

from django.shortcuts import get_object_or_404
from rest_framework.exceptions import NotFound, PermissionDenied

from imagestudio.datasets.models import Dataset, Role, role_at_least
from imagestudio.datasets.selectors import dataset_role

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class DatasetScopedMixin:
    """For views under datasets/{dataset_id}/: loads `self.dataset` and `self.role`, enforces `required_roles`.

    `required_roles` maps an action (or HTTP method) to the lowest role allowed; by default reading
    needs viewer and writing needs editor.
    """

    required_roles = {}
    read_role = Role.VIEWER
    write_role = Role.EDITOR

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.dataset = self._load_dataset()
        self.role = dataset_role(user=request.user, dataset=self.dataset)
        if self.role is None:
            raise NotFound("No dataset with this id is visible to you.")
        required = self.required_role(request)
        if not role_at_least(self.role, required):
            raise PermissionDenied(f"This needs the {required} role on the dataset; you are {self.role}.")

    def _load_dataset(self):
        return get_object_or_404(Dataset, pk=self.kwargs["dataset_id"])

    def required_role(self, request):
        action = getattr(self, "action", None)
        if action in self.required_roles:
            return self.required_roles[action]
        if request.method in self.required_roles:
            return self.required_roles[request.method]
        return self.read_role if request.method in SAFE_METHODS else self.write_role
