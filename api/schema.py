from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter


class AutoSchema(SpectacularAutoSchema):
    """Types the nested dataset id in every dataset-scoped path (its name matches no model field)."""

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if "{dataset_id}" in self.path:
            parameters = [
                OpenApiParameter("dataset_id", int, OpenApiParameter.PATH, description="The dataset's id."),
                *parameters,
            ]
        return parameters
