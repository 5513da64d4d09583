"""One place that scopes every dataset resource to the caller: strangers get 404, low roles 403.

Every view under datasets/{dataset_id}/ inherits `DatasetScopedMixin`: it loads the dataset and the caller's
role before the handler runs, and owns `get_queryset` / `get_object` from the view's `scoped_selector` (a
domain selector taking the dataset), so no view can list or fetch outside the dataset it was asked for.
"""

from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from imagestudio.common.ids import parse_id
from imagestudio.datasets.models import Role, role_at_least
from imagestudio.datasets.selectors import dataset_get_visible, dataset_role, label_class_by_ref, sample_get

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def require_role(*, user, dataset, required):
    """The caller's role on the dataset; 404 for a stranger, 403 below `required`."""
    role = dataset_role(user=user, dataset=dataset)
    if role is None:
        raise NotFound("No dataset with this id is visible to you.")
    if not role_at_least(role, required):
        raise PermissionDenied(f"This needs the {required} role on the dataset; you are {role}.")
    return role


def schema_placeholder(model):
    """An empty queryset naming the model, for schema generation (no request, no user)."""
    return model._default_manager.none()


class DatasetScopedMixin:
    """For views under datasets/{dataset_id}/: loads `self.dataset` and `self.role`, enforces `required_roles`.

    `required_roles` maps an action (or HTTP method) to the lowest role allowed; by default reading needs
    viewer and writing needs editor. `scoped_model` names the child resource (for the schema) and
    `scoped_selector` lists the dataset's children, ordered.
    """

    required_roles = {}
    read_role = Role.VIEWER
    write_role = Role.EDITOR
    scoped_model = None
    scoped_selector = None  # staticmethod(selector): (dataset=...) -> queryset
    not_found = "No such object in this dataset."

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.dataset = dataset_get_visible(user=request.user, dataset_id=parse_id(str(self.kwargs["dataset_id"])))
        if self.dataset is None:
            raise NotFound("No dataset with this id is visible to you.")
        self.role = require_role(user=request.user, dataset=self.dataset, required=self.required_role(request))

    def required_role(self, request):
        action = getattr(self, "action", None)
        if action in self.required_roles:
            return self.required_roles[action]
        if request.method in self.required_roles:
            return self.required_roles[request.method]
        return self.read_role if request.method in SAFE_METHODS else self.write_role

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no dataset
            return schema_placeholder(self.scoped_model)
        return self.scoped_selector(dataset=self.dataset)

    def get_object(self):
        pk = parse_id(str(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, "")))
        found = None if pk is None else self.get_queryset().filter(pk=pk).first()
        if found is None:
            raise NotFound(self.not_found)
        self.check_object_permissions(self.request, found)
        return found

    def label_class(self, ref, field="label_class"):
        """A class of this dataset by name or id, or a 400 on `field`."""
        label_class = label_class_by_ref(dataset=self.dataset, ref=ref)
        if label_class is None:
            raise ValidationError({field: [f"The dataset has no class {ref!r}."]})
        return label_class

    def optional_class(self, query, field="label_class"):
        return self.label_class(query[field], field=field) if field in query else None

    def sample(self, pk, *, prefetch=()):
        """A sample of this dataset, or a 404."""
        found = sample_get(dataset=self.dataset, sample_id=parse_id(str(pk)), prefetch=prefetch)
        if found is None:
            raise NotFound("No sample with this id in this dataset.")
        return found
