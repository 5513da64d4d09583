"""Links the api layer builds from the domain's samples-list filters."""

from rest_framework.test import APIRequestFactory

from api.links import absolute_url, samples_link


def test_samples_link_is_absolute_repeats_list_parameters_and_escapes_values():
    request = APIRequestFactory().get("/api/")
    link = samples_link(request, 7, {"split": "train", "lf_vote": ["1:ABSTAIN", "2:ABSTAIN"], "gt": "hot dog:ABSENT"})
    assert link == ("http://testserver/api/datasets/7/samples/"
                    "?split=train&lf_vote=1%3AABSTAIN&lf_vote=2%3AABSTAIN&gt=hot+dog%3AABSENT")


def test_absolute_url_follows_the_scheme_and_host_the_client_called(settings):
    settings.ALLOWED_HOSTS = ["studio.example"]
    request = APIRequestFactory().get("/api/", secure=True, HTTP_HOST="studio.example")
    assert absolute_url(request, "/api/jobs/1/") == "https://studio.example/api/jobs/1/"
