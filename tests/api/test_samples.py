"""Exploration: the samples list (grid / data views), the image view, image bytes and resampling."""


import json

import pytest

from imagestudio.annotations.models import Annotation
from imagestudio.datasets.filters import samples_select
from imagestudio.datasets.models import Role, Sample
from imagestudio.datasets.services import dataset_create, tag_apply, tag_create
from tests.conftest import client_for
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def samples(dataset):
    return make_samples(dataset, [
        {"split": "train", "metadata": {"caption": "A Tabby cat", "n": 1}, "gt": {"cat": "PRESENT", "dog": "ABSENT"},
         "tags": ["blurry"]},
        {"split": "train", "metadata": {"caption": "a dog in the park", "n": 2}, "gt": {"dog": "PRESENT"}},
        {"split": "dev", "metadata": {"caption": "cat and dog", "n": 3}, "gt": {"cat": "PRESENT", "dog": "PRESENT"},
         "tags": ["blurry", "dark"]},
        {"split": "dev", "metadata": {"caption": "empty room"}},
        {"split": "test", "metadata": {}, "gt": {"cat": "ABSENT"}},
    ])


def ids(response):
    assert response.status_code == 200, response.content
    return [s["external_id"] for s in response.json()["results"]]


def test_list_shows_grid_fields_and_ground_truth(api, dataset, samples):
    body = api.get(f"/api/datasets/{dataset.id}/samples/").json()
    assert body["count"] == 5
    first = body["results"][0]
    assert first["ground_truth"] == {"cat": "PRESENT", "dog": "ABSENT"}
    assert first["tags"] == ["blurry"]
    assert first["thumbnail_url"].startswith(
        f"http://testserver/api/datasets/{dataset.id}/samples/{samples[0].id}/thumbnail/?exp=")
    assert first["metadata"] == {"caption": "A Tabby cat", "n": 1}


@pytest.mark.parametrize("query, expected", [
    ("split=dev", ["s2", "s3"]),
    ("tag=blurry", ["s0", "s2"]),
    ("tag=blurry&tag=dark", ["s2"]),
    ("tag=blurry,dark", ["s2"]),
    ("search=tabby", ["s0"]),
    ("search=DOG", ["s1", "s2"]),
    ("gt=cat:PRESENT", ["s0", "s2"]),
    ("gt=cat:absent", ["s4"]),
    ("gt=cat:ABSTAIN", ["s1", "s3"]),
    ("gt=dog:LABELED", ["s0", "s1", "s2"]),
    ("gt=cat:PRESENT&gt=dog:PRESENT", ["s2"]),
    ("split=train&gt=dog:PRESENT", ["s1"]),
    ("ordering=-width", ["s4", "s3", "s2", "s1", "s0"]),
    ("search=nothing-matches-this", []),
])
def test_filters_and_ordering(api, dataset, samples, query, expected):
    assert ids(api.get(f"/api/datasets/{dataset.id}/samples/?{query}")) == expected


def test_ordering_by_bytes_follows_the_stored_sizes(api, dataset, samples):
    rows = api.get(f"/api/datasets/{dataset.id}/samples/?ordering=-bytes").json()["results"]
    assert [r["id"] for r in rows] == [r["id"] for r in sorted(rows, key=lambda r: (r["bytes"], r["id"]), reverse=True)]


def test_filter_by_class_id(api, dataset, samples):
    cat = dataset.classes.get(name="cat")
    assert ids(api.get(f"/api/datasets/{dataset.id}/samples/?gt={cat.id}:PRESENT")) == ["s0", "s2"]


@pytest.mark.parametrize("query, field", [
    ("split=holdout", "split"),
    ("gt=unicorn:PRESENT", "gt"),
    ("gt=cat:MAYBE", "gt"),
    ("gt=cat", "gt"),
    ("tag=nope", "tag"),
    ("ordering=sha256", "ordering"),
    ("in_sample=perhaps", "in_sample"),
    ("search=" + "x" * 201, "search"),
    ("ids=abc", "ids"),
])
def test_bad_filters_are_400(api, dataset, samples, query, field):
    response = api.get(f"/api/datasets/{dataset.id}/samples/?{query}")
    assert response.status_code == 400 and field in response.json(), response.content


def test_fields_select_metadata(api, dataset, samples):
    results = api.get(f"/api/datasets/{dataset.id}/samples/?fields=n").json()["results"]
    assert [r["metadata"] for r in results] == [{"n": 1}, {"n": 2}, {"n": 3}, {}, {}]
    none = api.get(f"/api/datasets/{dataset.id}/samples/?fields=").json()["results"]
    assert all(r["metadata"] == {} for r in none)


def test_page_size_is_capped(api, dataset):
    make_samples(dataset, [{} for _ in range(510)])
    body = api.get(f"/api/datasets/{dataset.id}/samples/?limit=10000").json()
    assert body["count"] == 510 and len(body["results"]) == 500
    deep = api.get(f"/api/datasets/{dataset.id}/samples/?limit=5&offset=505").json()
    assert [r["external_id"] for r in deep["results"]] == [f"s{i}" for i in range(505, 510)]


def test_another_dataset_sample_is_404(api, owner, dataset, samples):
    other = dataset_create(user=owner, name="Other")
    assert api.get(f"/api/datasets/{other.id}/samples/{samples[0].id}/").status_code == 404
    assert api.get(f"/api/datasets/{other.id}/samples/{samples[0].id}/image/").status_code == 404
    assert api.get(f"/api/datasets/{dataset.id}/samples/999999/").status_code == 404


def test_detail_and_patch(api, dataset, samples):
    url = f"/api/datasets/{dataset.id}/samples/{samples[0].id}/"
    detail = api.get(url).json()
    assert detail["sha256"] == samples[0].sha256
    assert {a["class_name"]: a["value"] for a in detail["annotations"]} == {"cat": "PRESENT", "dog": "ABSENT"}
    assert detail["comments"] == []
    moved = api.patch(url, {"split": "valid", "metadata": {"caption": "Renamed"}}, format="json")
    assert moved.status_code == 200 and moved.json()["split"] == "valid"
    assert ids(api.get(f"/api/datasets/{dataset.id}/samples/?search=renamed")) == ["s0"]
    assert api.patch(url, {"split": "nowhere"}, format="json").status_code == 400
    assert api.patch(url, {"metadata": "text"}, format="json").status_code == 400


@pytest.mark.parametrize("text", ["a lone \ud800 surrogate", "a NUL \u0000 inside"])
def test_patch_refuses_metadata_the_database_cannot_store(api, dataset, samples, text):
    """Valid JSON, text Postgres refuses: a 400 naming the field (a lone surrogate was a 500)."""
    url = f"/api/datasets/{dataset.id}/samples/{samples[0].id}/"
    body = json.dumps({"metadata": {"caption": text}})  # ASCII with \u escapes: valid JSON on the wire
    response = api.patch(url, body, content_type="application/json")
    assert response.status_code == 400 and "caption" in response.content.decode(), response.content
    assert api.get(url).json()["metadata"] == samples[0].metadata


def test_patch_refuses_metadata_too_large_as_a_whole(api, dataset, samples):
    url = f"/api/datasets/{dataset.id}/samples/{samples[0].id}/"
    for metadata, said in (({f"k{i}": i for i in range(300)}, "300 fields"),
                           ({f"k{i}": "x" * 9_000 for i in range(23)}, "200,000 characters")):
        response = api.patch(url, {"metadata": metadata}, format="json")
        assert response.status_code == 400 and said in response.json()["metadata"][0]
    assert api.get(url).json()["metadata"] == samples[0].metadata


@pytest.mark.parametrize("value", ["a" * 10_001, ["a" * 5_000, "b" * 5_000]])
def test_patch_refuses_a_metadata_value_longer_than_an_import_takes(api, dataset, samples, value):
    """A pattern LF searches each value whole, in one call its time budget cannot interrupt (a 200,000-character
    caption set by PATCH held a keyword preview for seconds)."""
    url = f"/api/datasets/{dataset.id}/samples/{samples[0].id}/"
    response = api.patch(url, {"metadata": {"caption": value}}, format="json")
    assert response.status_code == 400 and "longer than 10000 characters" in response.content.decode()
    assert api.patch(url, {"metadata": {"caption": "a" * 10_000}}, format="json").status_code == 200


def test_patch_keeps_split_counts(api, owner):
    dataset = dataset_create(user=owner, name="Counts", classes=["cat"])
    sample = make_samples(dataset, [{"split": "train"}])[0]
    api.patch(f"/api/datasets/{dataset.id}/samples/{sample.id}/", {"split": "dev"}, format="json")
    assert api.get(f"/api/datasets/{dataset.id}/").json()["split_counts"] == {"train": 0, "dev": 1, "valid": 0,
                                                                              "test": 0}


def test_viewer_reads_but_cannot_patch(dataset, samples, member_client):
    viewer = member_client(Role.VIEWER)
    url = f"/api/datasets/{dataset.id}/samples/{samples[0].id}/"
    assert viewer.get(url).status_code == 200
    assert viewer.patch(url, {"split": "dev"}, format="json").status_code == 403


def test_stranger_sees_nothing(dataset, samples, stranger):
    other = client_for(stranger)
    assert other.get(f"/api/datasets/{dataset.id}/samples/").status_code == 404
    assert other.get(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/thumbnail/").status_code == 404


def test_resample_is_deterministic_and_restricts_views(api, dataset):
    make_samples(dataset, [{"split": "train", "gt": {"cat": "PRESENT"} if i % 4 == 0 else {}} for i in range(40)])
    url = f"/api/datasets/{dataset.id}/samples/resample/"
    body = {"split": "train", "sample_size": 12, "max_labeled": 4, "min_per_class": 2, "seed": 5}
    first = api.post(url, body, format="json")
    assert first.status_code == 200, first.content
    realized = first.json()["realized"]
    assert realized["total"] == 12 and realized["labeled"] <= 4 and realized["per_class"]["cat"]["present"] >= 2
    assert realized["available"] == 40
    assert first.json()["shortfall"] == {"dog": 2}  # no dog is labeled PRESENT: the draw says what it lacks
    chosen = ids(api.get(f"/api/datasets/{dataset.id}/samples/?in_sample=true&split=train&limit=100"))
    assert len(chosen) == 12
    api.post(url, {**body, "seed": 6}, format="json")
    assert ids(api.get(f"/api/datasets/{dataset.id}/samples/?in_sample=true&limit=100")) != chosen
    api.post(url, body, format="json")
    assert ids(api.get(f"/api/datasets/{dataset.id}/samples/?in_sample=true&limit=100")) == chosen
    assert api.get(url + "?split=train").json()["seed"] == 5
    # A misspelt parameter is refused before a DELETE acts, not after: the resample is still there.
    refused = api.delete(url + "?split=train&dry_run=1")
    assert refused.status_code == 400 and "dry_run" in refused.json()
    assert api.get(url + "?split=train&sead=5").status_code == 400
    assert api.get(url + "?split=train").json()["current"] == realized  # nothing moved since the draw
    members = list(Sample.objects.filter(dataset=dataset, external_id__in=chosen).values_list("id", flat=True))
    unlabeled = next(i for i in members if not Annotation.objects.filter(sample_id=i).exists())
    api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": unlabeled, "label_class": "dog", "value": "ABSENT"},
            format="json")
    moved = next(i for i in members if i != unlabeled)
    assert api.patch(f"/api/datasets/{dataset.id}/samples/{moved}/", {"split": "dev"}, format="json").status_code == 200
    now = api.get(url + "?split=train").json()
    in_sample = api.get(f"/api/datasets/{dataset.id}/samples/?in_sample=true&split=train&limit=100").json()
    assert now["realized"] == realized and now["current"]["total"] == in_sample["count"] == 11
    assert now["current"]["available"] == 39 and now["current"]["per_class"]["dog"]["absent"] == 1
    assert now["current"]["labeled"] == sum(1 for r in in_sample["results"] if Annotation.objects.filter(
        sample_id=r["id"], value__in=["PRESENT", "ABSENT"]).exists())
    cat, dog = (dataset.classes.get(name=name).id for name in ("cat", "dog"))
    assert api.patch(f"/api/datasets/{dataset.id}/classes/{cat}/", {"name": "kitty"}, format="json").status_code == 200
    renamed = api.get(url + "?split=train").json()
    assert renamed["realized"]["per_class"]["kitty"] == realized["per_class"]["cat"]
    assert set(renamed["realized"]["per_class"]) == set(renamed["current"]["per_class"]) == {"kitty", "dog"}
    assert api.delete(f"/api/datasets/{dataset.id}/classes/{dog}/").status_code == 204
    gone = api.get(url + "?split=train").json()  # its draw-time figures went with it, not left for the next "dog"
    assert set(gone["realized"]["per_class"]) == {"kitty"} and gone["shortfall"] == {}
    api.post(f"/api/datasets/{dataset.id}/classes/", {"name": "dog"}, format="json")
    assert api.get(url + "?split=train").json()["shortfall"] == {}
    assert api.delete(url + "?split=train").status_code == 204
    assert api.get(url + "?split=train").status_code == 404
    assert ids(api.get(f"/api/datasets/{dataset.id}/samples/?in_sample=true")) == []


@pytest.mark.parametrize("body, field", [
    ({"sample_size": 10}, "split"),
    ({"split": "train"}, "sample_size"),
    ({"split": "train", "sample_size": 0}, "sample_size"),
    ({"split": "train", "sample_size": 10**12}, "sample_size"),
    ({"split": "train", "sample_size": 10, "seed": -1}, "seed"),
    ({"split": "train", "sample_size": "ten"}, "sample_size"),
    ({"split": "train", "sample_size": 5, "max_labeled": 1, "min_per_class": 3}, "min_per_class"),
])
def test_resample_bad_input(api, dataset, body, field):
    make_samples(dataset, [{"gt": {"cat": "PRESENT", "dog": "PRESENT"}} for _ in range(10)])
    response = api.post(f"/api/datasets/{dataset.id}/samples/resample/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content


def test_resample_roles(dataset, member_client):
    body = {"split": "train", "sample_size": 1}
    url = f"/api/datasets/{dataset.id}/samples/resample/"
    assert member_client(Role.VIEWER).post(url, body, format="json").status_code == 403
    assert member_client(Role.ANNOTATOR).post(url, body, format="json").status_code == 200


def test_keyset_next_links_walk_every_sample_once(api, dataset):
    make_samples(dataset, [{"split": "dev" if i % 3 else "train"} for i in range(23)])
    for ordering in ("id", "-id"):
        url, seen = f"/api/datasets/{dataset.id}/samples/?split=dev&limit=5&ordering={ordering}", []
        while url:
            body = api.get(url).json()
            assert body["count"] == 15 and body["count_exact"] is True
            seen += [r["id"] for r in body["results"]]
            url = body["next"]
            assert url is None or "after=" in url
        assert len(seen) == 15 == len(set(seen))
        assert seen == sorted(seen, reverse=ordering == "-id")


def test_keyset_links_in_other_orderings_and_back(api, dataset):
    samples = make_samples(dataset, [{} for _ in range(12)])
    for index, sample in enumerate(samples):  # widths 3, 2, 1, 0, 3, 2, ...: ties broken by id
        Sample.objects.filter(pk=sample.pk).update(width=3 - index % 4)
    expected = [s.id for s in sorted(samples, key=lambda s: (-(3 - samples.index(s) % 4), -s.id))]
    url, pages = f"/api/datasets/{dataset.id}/samples/?ordering=-width&limit=5", []
    while url:
        body = api.get(url).json()
        pages.append(([r["id"] for r in body["results"]], body["previous"]))
        url = body["next"]
        assert url is None or ("after=" in url and "before=" not in url)
    assert [i for ids, _ in pages for i in ids] == expected
    assert pages[0][1] is None and "before=" not in pages[1][1] and "offset" not in pages[1][1]
    back = api.get(pages[2][1]).json()  # the third page's previous link goes by key
    assert [r["id"] for r in back["results"]] == pages[1][0]
    assert "offset=5" in pages[2][1] and f"before={pages[2][0][0]}" in pages[2][1]
    assert "after=" in back["next"] and [r["id"] for r in api.get(back["next"]).json()["results"]] == pages[2][0]


@pytest.mark.parametrize("ordering", ["id", "-width"])
@pytest.mark.parametrize("sent_offset", ["", "&offset=0"])
def test_pages_by_key_alone_link_to_every_row_before_and_after_them(api, dataset, ordering, sent_offset):
    """A client paging by `after` or `before` with no offset, or with the offset of 0 a generated client sends with
    every request: its links, followed to their ends, give every row before and after its page, once and in order
    (the previous link of `after=30` was missing, that of `before=60` led to the first page, and so did every
    previous link beside `offset=0`)."""
    samples = make_samples(dataset, [{} for _ in range(8)])
    for index, sample in enumerate(samples):
        Sample.objects.filter(pk=sample.pk).update(width=index % 3)
    base = f"/api/datasets/{dataset.id}/samples/?ordering={ordering}"
    rows = [r["id"] for r in api.get(f"{base}&limit=100").json()["results"]]

    def walk(url, direction):
        pages = []
        while url:
            body = api.get(url).json()
            pages.append([r["id"] for r in body["results"]])
            url = body[direction]
        return pages

    for limit in (1, 3):
        for at, anchor in enumerate(rows):
            for key, start in (("after", at + 1), ("before", max(at - limit, 0))):
                url = f"{base}&limit={limit}&{key}={anchor}{sent_offset}"
                page, *later = walk(url, "next")
                assert page == (rows[start:start + limit] if key == "after" else rows[start:at]), (url, page)
                if not page:
                    continue  # before the first row: nothing, and no link
                assert [i for ids in later for i in ids] == rows[start + len(page):], url
                earlier = walk(url, "previous")[1:]
                assert [i for ids in reversed(earlier) for i in ids] == rows[:start], url


def test_previous_links_of_deep_keyset_pages_go_by_key(api, dataset):
    samples = make_samples(dataset, [{} for _ in range(6)])
    url = f"/api/datasets/{dataset.id}/samples/?limit=2&offset=20002&after={samples[1].id}"
    body = api.get(url).json()  # a position beyond MAX_OFFSET is only a label with a cursor
    assert [r["id"] for r in body["results"]] == [s.id for s in samples[2:4]]
    back = api.get(body["previous"]).json()
    assert "offset=20000" in body["previous"] and [r["id"] for r in back["results"]] == [s.id for s in samples[:2]]
    assert back["previous"] is None  # nothing before the first sample


@pytest.mark.parametrize(("query", "field"), [
    ("offset=10001", "offset"),
    ("offset=10001&ordering=width", "offset"),
    ("after=1&before=2", "before"),
    ("before=-1", "before"),
    ("before=1x", "before"),
])
def test_paging_bad_input(api, dataset, query, field):
    response = api.get(f"/api/datasets/{dataset.id}/samples/?{query}")
    assert response.status_code == 400 and field in response.json(), response.content
    if field == "offset":
        assert "after" in response.json()["offset"][0]


def test_an_offset_within_the_bound_still_pages(api, dataset):
    make_samples(dataset, [{} for _ in range(3)])
    body = api.get(f"/api/datasets/{dataset.id}/samples/?offset=10000").json()
    assert body["results"] == [] and body["count"] == 3


@pytest.mark.parametrize("cursor", ["after", "before"])
def test_a_deleted_cursor_sample_is_a_400_under_a_value_ordering(api, dataset, cursor):
    samples = make_samples(dataset, [{} for _ in range(3)])
    Sample.objects.filter(pk=samples[1].pk).delete()
    base = f"/api/datasets/{dataset.id}/samples/?{cursor}={samples[1].id}"
    assert api.get(f"{base}&ordering=id").status_code == 200
    response = api.get(f"{base}&ordering=-created_at")
    assert response.status_code == 400 and cursor in response.json(), response.content


def test_counts_come_from_counters_and_are_capped_for_free_filters(api, dataset, monkeypatch):
    from imagestudio.datasets import selectors

    make_samples(dataset, [{"gt": {"cat": "PRESENT"} if i < 4 else {}, "metadata": {"caption": "zebra"}}
                           for i in range(9)])
    base = f"/api/datasets/{dataset.id}/samples/"
    assert api.get(f"{base}?gt=cat:PRESENT").json()["count"] == 4
    assert api.get(f"{base}?gt=cat:ABSTAIN").json()["count"] == 5
    assert api.get(f"{base}?gt=cat:LABELED&split=train").json()["count"] == 4
    monkeypatch.setattr(selectors, "COUNT_CAP", 3)
    monkeypatch.setattr(selectors, "SEARCH_COUNT_CAP", 2)
    tag_apply(tag=tag_create(dataset=dataset, name="blurry"), samples=samples_select(dataset=dataset, filter_values={}))
    capped = api.get(f"{base}?tag=blurry&limit=2").json()
    assert (capped["count"], capped["count_exact"]) == (3, False) and capped["next"]
    searched = api.get(f"{base}?search=zebra&limit=1").json()
    assert (searched["count"], searched["count_exact"]) == (2, False) and searched["next"]
    exact = api.get(f"{base}?search=zebra&gt=cat:PRESENT&split=train").json()
    assert (exact["count"], exact["count_exact"]) == (2, False)  # four match; two are counted
