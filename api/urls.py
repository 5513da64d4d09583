from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from api.views.auth import ObtainTokenView
from api.views.datasets import DatasetViewSet, LabelClassViewSet, MembershipViewSet
from api.views.jobs import JobViewSet
from api.views.samples import ImportView, ResampleView, SampleViewSet

DATASET = r"datasets/(?P<dataset_id>[0-9]+)"

router = SimpleRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("datasets", DatasetViewSet, basename="dataset")
router.register(f"{DATASET}/classes", LabelClassViewSet, basename="class")
router.register(f"{DATASET}/members", MembershipViewSet, basename="member")
router.register(f"{DATASET}/samples", SampleViewSet, basename="sample")

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("datasets/<int:dataset_id>/samples/resample/", ResampleView.as_view(), name="sample-resample"),
    path("datasets/<int:dataset_id>/imports/", ImportView.as_view(), name="dataset-imports"),
    *router.urls,
]
