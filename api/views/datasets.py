from contextlib import contextmanager

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from api.headers import ConditionalWritesMixin
from api.responses import LocatedCreatesMixin
from api.scoping import DatasetScopedMixin, require_role, schema_placeholder
from api.serializers.datasets import (
    DatasetCreateSerializer,
    DatasetSerializer,
    DatasetUpdateSerializer,
    LabelClassSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
)
from api.validation import KnownBodyKeysMixin, refuse_unknown_keys
from imagestudio.common.ids import parse_id
from imagestudio.datasets import services
from imagestudio.datasets.models import Dataset, DatasetMembership, LabelClass, Role
from imagestudio.datasets.selectors import (
    dataset_get_visible,
    dataset_list,
    dataset_roles,
    label_class_list,
    membership_list,
)


class DatasetViewSet(LocatedCreatesMixin, ConditionalWritesMixin, viewsets.ModelViewSet):
    """Datasets you are a member of. Creating one makes you its owner."""

    serializer_class = DatasetSerializer
    lookup_url_kwarg = "dataset_id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    required_roles = {"partial_update": Role.EDITOR, "destroy": Role.OWNER}
    edit_fields = ("name", "description", "auto_embed", "auto_train")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return schema_placeholder(Dataset)
        return dataset_list(user=self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False) and self.request.user.is_authenticated:
            context["roles"] = dataset_roles(user=self.request.user)
            context["is_superuser"] = self.request.user.is_superuser
        return context

    def get_object(self):
        """The dataset, with the same role rule as every dataset child (require_role)."""
        dataset = dataset_get_visible(user=self.request.user, dataset_id=parse_id(str(self.kwargs["dataset_id"])))
        if dataset is None:
            raise NotFound("No dataset with this id is visible to you.")
        require_role(user=self.request.user, dataset=dataset,
                     required=self.required_roles.get(self.action, Role.VIEWER))
        return dataset

    @extend_schema(request=DatasetCreateSerializer, responses={201: DatasetSerializer})
    def create(self, request):
        serializer = DatasetCreateSerializer(data=request.data)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        dataset = services.dataset_create(user=request.user, **serializer.validated_data)
        return Response(self._render(dataset), status=status.HTTP_201_CREATED)

    @extend_schema(request=DatasetUpdateSerializer, responses={200: DatasetSerializer})
    def partial_update(self, request, dataset_id=None):
        dataset = self.get_object()
        serializer = DatasetUpdateSerializer(data=request.data, partial=True)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        with self.conditional_write(dataset):
            services.dataset_update(dataset=dataset, **serializer.validated_data)
        return Response(self._render(dataset))

    def destroy(self, request, dataset_id=None):
        dataset = self.get_object()
        self.require_current(dataset)
        services.dataset_delete(dataset=dataset)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def represent(self, dataset):
        return self._render(dataset)

    def _render(self, dataset):
        dataset = dataset_get_visible(user=self.request.user, dataset_id=dataset.pk)
        return DatasetSerializer(dataset, context=self.get_serializer_context()).data


class LabelClassViewSet(KnownBodyKeysMixin, LocatedCreatesMixin, ConditionalWritesMixin, DatasetScopedMixin,
                        viewsets.ModelViewSet):
    """Label classes of a dataset (multi-label: a sample can be PRESENT for several)."""

    serializer_class = LabelClassSerializer
    scoped_model = LabelClass
    lookup_url_kwarg = "class_id"
    edit_fields = ("name", "description")
    scoped_selector = staticmethod(label_class_list)
    not_found = "No such class in this dataset."
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_create(self, serializer):
        serializer.instance = services.label_class_create(dataset=self.dataset, **serializer.validated_data)

    def perform_update(self, serializer):
        with self.conditional_write(serializer.instance):
            services.label_class_update(label_class=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, label_class):
        self.require_current(label_class)
        services.label_class_delete(label_class=label_class)


class MembershipViewSet(LocatedCreatesMixin, ConditionalWritesMixin, DatasetScopedMixin, mixins.ListModelMixin,
                        mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                        viewsets.GenericViewSet):
    """Who may use the dataset, and as what: viewer < annotator < editor < owner. Owners manage members."""

    serializer_class = MembershipSerializer
    scoped_model = DatasetMembership
    lookup_url_kwarg = "member_id"
    edit_fields = ("role",)
    scoped_selector = staticmethod(membership_list)
    not_found = "No such member of this dataset."
    write_role = Role.OWNER

    @contextmanager
    def _as_owner(self, target):
        """The owners' rows, the target's and the caller's locked first (services.memberships_locked), and the
        caller still an owner under that lock: one demoted by a request that committed after this one's role check
        demoted another owner all the same."""
        caller = self.request.user
        with services.memberships_locked(dataset=self.dataset, users=[caller.pk, target.pk]) as locked:
            if not caller.is_superuser and not any(row.user_id == caller.pk and row.role == Role.OWNER
                                                   for row in locked):
                raise PermissionDenied("You are no longer an owner of this dataset: only owners manage members.")
            yield

    @extend_schema(request=MembershipSerializer, responses={201: MembershipSerializer, 200: MembershipSerializer})
    def create(self, request, dataset_id=None):
        """Add a member (201), or change an existing member's role (200)."""
        serializer = MembershipSerializer(data=request.data)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_by_username(serializer.validated_data["user"]["username"])
        with self._as_owner(user):
            membership, created = services.membership_set(dataset=self.dataset, user=user,
                                                          role=serializer.validated_data["role"])
        return Response(MembershipSerializer(membership).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=MembershipUpdateSerializer, responses={200: MembershipSerializer})
    def partial_update(self, request, dataset_id=None, member_id=None):
        membership = self.get_object()
        serializer = MembershipUpdateSerializer(data=request.data)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        with self._as_owner(membership.user), self.conditional_write(membership):
            membership, _ = services.membership_set(dataset=self.dataset, user=membership.user,
                                                    role=serializer.validated_data["role"])
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, membership):
        with self._as_owner(membership.user):
            self.require_current(membership)
            services.membership_remove(membership=membership)
