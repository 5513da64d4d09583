from django.urls import URLPattern, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from api.views.annotations import AnnotationBulkView, AnnotationHistoryView, AnnotationUndoView, AnnotationView
from api.views.auth import ApiTokenViewSet, LogoutView, ObtainTokenView
from api.views.catalogues import FieldCatalogueView, LFTypeCatalogueView
from api.views.datasets import DatasetViewSet, LabelClassViewSet, MembershipViewSet
from api.views.embeddings import EmbeddingsView, ResourcesView, SimilaritySearchView
from api.views.exports import ExportViewSet
from api.views.health import HealthView
from api.views.jobs import JobViewSet
from api.views.labeling import LabelingFunctionViewSet
from api.views.root import ApiRootView
from api.views.samples import FILE_SIZES, ImportView, ResampleView, SampleViewSet, signed_first
from api.views.tags import CommentViewSet, TagViewSet
from api.views.training import AnalysisView, FastModelViewSet, TrainingSetViewSet

DATASET = r"datasets/(?P<dataset_id>[0-9]+)"
FILE_ROUTES = {f"sample-{action}" for action in FILE_SIZES}

router = SimpleRouter()
router.register("auth/tokens", ApiTokenViewSet, basename="token")
router.register("jobs", JobViewSet, basename="job")
router.register("datasets", DatasetViewSet, basename="dataset")
router.register(f"{DATASET}/classes", LabelClassViewSet, basename="class")
router.register(f"{DATASET}/members", MembershipViewSet, basename="member")
router.register(f"{DATASET}/samples", SampleViewSet, basename="sample")
router.register(f"{DATASET}/samples/(?P<sample_id>[0-9]+)/comments", CommentViewSet, basename="comment")
router.register(f"{DATASET}/tags", TagViewSet, basename="tag")
router.register(f"{DATASET}/lfs", LabelingFunctionViewSet, basename="lf")
router.register(f"{DATASET}/training-sets", TrainingSetViewSet, basename="training-set")
router.register(f"{DATASET}/models", FastModelViewSet, basename="model")
router.register(f"{DATASET}/exports", ExportViewSet, basename="export")

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    path("auth/logout/", LogoutView.as_view(), name="auth-logout"),  # before the include, which has one too
    path("health/", HealthView.as_view(), name="health"),
    path("lf-types/", LFTypeCatalogueView.as_view(), name="lf-types"),
    path("auth/", include("rest_framework.urls")),  # session login for the browsable API
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("datasets/<int:dataset_id>/samples/resample/", ResampleView.as_view(), name="sample-resample"),
    path("datasets/<int:dataset_id>/imports/", ImportView.as_view(), name="dataset-imports"),
    path("datasets/<int:dataset_id>/embeddings/", EmbeddingsView.as_view(), name="embeddings"),
    path("datasets/<int:dataset_id>/embeddings/search/", SimilaritySearchView.as_view(), name="embeddings-search"),
    path("datasets/<int:dataset_id>/resources/", ResourcesView.as_view(), name="resources"),
    path("datasets/<int:dataset_id>/analysis/", AnalysisView.as_view(), name="analysis"),
    path("datasets/<int:dataset_id>/fields/", FieldCatalogueView.as_view(), name="fields"),
    path("datasets/<int:dataset_id>/annotations/", AnnotationView.as_view(), name="annotations"),
    path("datasets/<int:dataset_id>/annotations/bulk/", AnnotationBulkView.as_view(), name="annotations-bulk"),
    path("datasets/<int:dataset_id>/annotations/bulk/undo/", AnnotationUndoView.as_view(), name="annotations-undo"),
    path("datasets/<int:dataset_id>/annotations/history/", AnnotationHistoryView.as_view(), name="annotations-history"),
    # The file routes answer signed URLs before the viewset (see signed_first): an <img> grid is 100 of them.
    *(URLPattern(route.pattern, signed_first(route.callback, FILE_SIZES[route.name.removeprefix("sample-")]),
                 route.default_args, route.name) if route.name in FILE_ROUTES else route for route in router.urls),
]
# The root lists the routes above that take no parameter, so a new top-level resource shows in it by itself.
urlpatterns.append(path("", ApiRootView.as_view(patterns=tuple(urlpatterns)), name="api-root"))
