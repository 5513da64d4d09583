from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from api.headers import ConditionalWritesMixin
from api.responses import LocatedCreatesMixin
from api.scoping import DatasetScopedMixin
from api.serializers.samples import CommentSerializer
from api.serializers.tags import CommentWriteSerializer, TagApplyResultSerializer, TagApplySerializer, TagSerializer
from api.validation import refuse_unknown_keys
from imagestudio.datasets import services
from imagestudio.datasets.models import Comment, Role, Tag
from imagestudio.datasets.selectors import comment_list, tag_counted, tag_list


class TagViewSet(LocatedCreatesMixin, ConditionalWritesMixin, DatasetScopedMixin, viewsets.ModelViewSet):
    """Tags of a dataset: create, rename, delete, and apply to or remove from many samples at once."""

    serializer_class = TagSerializer
    scoped_model = Tag
    lookup_url_kwarg = "tag_id"
    edit_fields = ("name",)
    scoped_selector = staticmethod(tag_list)
    not_found = "No such tag in this dataset."
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    write_role = Role.ANNOTATOR

    def represent(self, tag):
        return self._render(tag)

    def _render(self, tag):
        return TagSerializer(tag_counted(tag=tag)).data

    def create(self, request, dataset_id=None):
        serializer = TagSerializer(data=request.data)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        tag = services.tag_create(dataset=self.dataset, name=serializer.validated_data["name"])
        return Response(self._render(tag), status=status.HTTP_201_CREATED)

    def partial_update(self, request, dataset_id=None, tag_id=None):
        tag = self.get_object()
        serializer = TagSerializer(tag, data=request.data, partial=True)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        with self.conditional_write(tag):
            services.tag_rename(tag=tag, name=serializer.validated_data.get("name", tag.name))
        return Response(self._render(tag))

    def perform_destroy(self, tag):
        self.require_current(tag)
        services.tag_delete(tag=tag)

    def _bulk(self, request, operation):
        tag = self.get_object()
        serializer = TagApplySerializer(data=request.data)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        return Response({"changed": operation(tag=tag, samples=serializer.samples(self.dataset))})

    @extend_schema(request=TagApplySerializer, responses={200: TagApplyResultSerializer})
    @action(detail=True, methods=["post"])
    def apply(self, request, dataset_id=None, tag_id=None):
        """Put the tag on samples given by ids or by a samples-list filter."""
        return self._bulk(request, services.tag_apply)

    @extend_schema(request=TagApplySerializer, responses={200: TagApplyResultSerializer})
    @action(detail=True, methods=["post"])
    def remove(self, request, dataset_id=None, tag_id=None):
        """Take the tag off samples given by ids or by a samples-list filter."""
        return self._bulk(request, services.tag_remove)


class CommentViewSet(LocatedCreatesMixin, ConditionalWritesMixin, DatasetScopedMixin, mixins.ListModelMixin,
                     mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Comments on a sample. Annotators and above comment; only the author or an owner edits or deletes."""

    serializer_class = CommentSerializer
    scoped_model = Comment
    lookup_url_kwarg = "comment_id"
    edit_fields = ("body",)
    not_found = "No such comment on this sample."
    write_role = Role.ANNOTATOR

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.commented = self.sample(self.kwargs["sample_id"])

    def scoped_selector(self, dataset):
        return comment_list(dataset=dataset, sample=self.commented)

    @extend_schema(request=CommentWriteSerializer, responses={201: CommentSerializer})
    def create(self, request, dataset_id=None, sample_id=None):
        serializer = CommentWriteSerializer(data=request.data)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        comment = services.comment_create(sample=self.commented, author=request.user, body=serializer.validated_data["body"])
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)

    def _own(self, comment):
        if comment.author_id != self.request.user.id and self.role != Role.OWNER:
            raise PermissionDenied("Only the comment's author or a dataset owner may change it.")
        return comment

    @extend_schema(request=CommentWriteSerializer, responses={200: CommentSerializer})
    def partial_update(self, request, dataset_id=None, sample_id=None, comment_id=None):
        comment = self._own(self.get_object())
        serializer = CommentWriteSerializer(data=request.data)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        with self.conditional_write(comment):
            comment = services.comment_update(comment=comment, **serializer.validated_data)
        return Response(CommentSerializer(comment).data)

    def destroy(self, request, dataset_id=None, sample_id=None, comment_id=None):
        comment = self._own(self.get_object())
        self.require_current(comment)
        services.comment_delete(comment=comment)
        return Response(status=status.HTTP_204_NO_CONTENT)
