"""URLs in payloads and headers, by one rule: absolute, on the scheme and host the client called.

`absolute_url` is the one function that turns a path into the URL a client follows (pagination links, job,
image and download URLs, guidance links, Location headers); anything that puts a URL in a payload goes
through it.
"""

from urllib.parse import urlencode

from django.urls import reverse

from imagestudio.training.analysis import dataset_analysis


def absolute_url(request, path: str) -> str:
    """The URL a client follows for `path` (which starts with /), e.g. http://host/api/jobs/<id>/."""
    return request.build_absolute_uri(path)


def samples_link(request, dataset_id: int, samples_filter: dict) -> str:
    """The samples-list URL of `samples_filter` (parameter -> value, or a list of values: repeated)."""
    path = f"{reverse('sample-list', kwargs={'dataset_id': dataset_id})}?{urlencode(samples_filter, doseq=True)}"
    return absolute_url(request, path)


def dataset_analysis_with_links(*, request, dataset, **options) -> dict:
    """The dataset's analysis with each guidance tip's samples filter turned into its samples-list link."""
    analysis = dataset_analysis(dataset=dataset, **options)
    for entry in analysis["classes"]:
        for tip in entry["guidance"]:
            tip["samples"] = samples_link(request, dataset.id, tip["samples"])
    return analysis
