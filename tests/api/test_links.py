"""Links the api layer builds from the domain's samples-list filters."""

from api.links import samples_link


def test_samples_link_repeats_list_parameters_and_escapes_values():
    link = samples_link(7, {"split": "train", "lf_vote": ["1:ABSTAIN", "2:ABSTAIN"], "gt": "hot dog:ABSENT"})
    assert link == "/api/datasets/7/samples/?split=train&lf_vote=1%3AABSTAIN&lf_vote=2%3AABSTAIN&gt=hot+dog%3AABSENT"
