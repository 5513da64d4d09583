"""Links the domain leaves to the api layer: a samples-list filter (query parameters) as the URL that lists it."""

from urllib.parse import urlencode

from django.urls import reverse

from imagestudio.training.analysis import dataset_analysis


def samples_link(dataset_id: int, samples_filter: dict) -> str:
    """The samples-list URL of `samples_filter` (parameter -> value, or a list of values: repeated)."""
    return f"{reverse('sample-list', kwargs={'dataset_id': dataset_id})}?{urlencode(samples_filter, doseq=True)}"


def dataset_analysis_with_links(*, dataset, **options) -> dict:
    """The dataset's analysis with each guidance tip's samples filter turned into its samples-list link."""
    analysis = dataset_analysis(dataset=dataset, **options)
    for entry in analysis["classes"]:
        for tip in entry["guidance"]:
            tip["samples"] = samples_link(dataset.id, tip["samples"])
    return analysis
