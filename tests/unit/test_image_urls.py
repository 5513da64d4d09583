"""Signed image URLs: what a signature opens (one size of one sample, until its expiry) and what it never does."""

from urllib.parse import parse_qs

from django.core.files.storage import FileSystemStorage
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from imagestudio.datasets.image_urls import ImageSize, signed_access, signed_query, storage_serves_files, url_expiry
from tests.object_storage import PresignedObjectStorage

TTL = 3600
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ids = st.integers(min_value=1, max_value=2**63 - 1)
moments = st.integers(min_value=1_000_000_000, max_value=4_000_000_000)


def issued(dataset_id, sample_id, size, now):
    """The parameters a client sends back for a URL issued at `now`, as signed_access takes them."""
    query = parse_qs(signed_query(dataset_id=dataset_id, sample_id=sample_id, size=size, expires=url_expiry(now)))
    return {"dataset_id": dataset_id, "sample_id": sample_id, "size": size,
            "expires": query["exp"][0], "signature": query["sig"][0]}


def edits(text, alphabet):
    """Texts one typo away from `text`: a character replaced, inserted or removed."""
    position = st.integers(min_value=0, max_value=len(text) - 1)
    return st.one_of(
        st.tuples(position, st.sampled_from(alphabet)).map(lambda e: text[:e[0]] + e[1] + text[e[0] + 1:]),
        st.tuples(st.integers(min_value=0, max_value=len(text)), st.sampled_from(alphabet))
        .map(lambda e: text[:e[0]] + e[1] + text[e[0]:]),
        position.map(lambda i: text[:i] + text[i + 1:]),
    ).filter(lambda edited: edited != text)


@settings(max_examples=300, deadline=None)
@given(ids, ids, st.sampled_from(ImageSize.values), moments)
def test_an_issued_url_opens_its_file_for_at_least_the_lifetime(dataset_id, sample_id, size, now):
    access = signed_access(**issued(dataset_id, sample_id, size, now), now=now)
    assert access.refusal is None
    assert TTL <= access.seconds_left <= TTL + TTL // 4


@settings(max_examples=500, deadline=None)
@given(ids, ids, st.sampled_from(ImageSize.values), moments, st.data())
def test_any_change_to_any_parameter_never_verifies(dataset_id, sample_id, size, now, data):
    genuine = issued(dataset_id, sample_id, size, now)
    field = data.draw(st.sampled_from(sorted(genuine)))
    value = genuine[field]
    if field in ("dataset_id", "sample_id"):
        tampered = data.draw(st.one_of(ids, st.sampled_from([value - 1, value + 1])).filter(lambda v: v != value))
    elif field == "size":
        tampered = data.draw(st.one_of(st.sampled_from(ImageSize.values), st.text(max_size=12)).filter(
            lambda v: v != value))
    elif field == "expires":
        tampered = data.draw(st.one_of(edits(value, "0123456789"), st.integers(min_value=0).map(str),
                                       st.just("0" + value), st.text(max_size=20)).filter(lambda v: v != value))
    else:
        tampered = data.draw(st.one_of(edits(value, BASE64URL), st.text(max_size=60)).filter(lambda v: v != value))
    assert signed_access(**{**genuine, field: tampered}, now=now).refusal == "signature_invalid"


@settings(max_examples=100, deadline=None)
@given(ids, ids, st.sampled_from(ImageSize.values), moments, st.integers(min_value=0, max_value=10**9))
def test_a_url_past_its_expiry_is_refused_as_expired(dataset_id, sample_id, size, now, late_by):
    genuine = issued(dataset_id, sample_id, size, now)
    access = signed_access(**genuine, now=int(genuine["expires"]) + late_by)
    assert access.refusal == "signature_expired"


@settings(max_examples=300, deadline=None)
@given(moments, st.integers(min_value=1, max_value=10**7))
def test_expiries_are_rounded_to_a_quarter_lifetime_bucket(now, ttl):
    with override_settings(IMAGE_URL_TTL_SECONDS=ttl):
        bucket = max(1, ttl // 4)
        expires = url_expiry(now)
        assert expires % bucket == 0 and ttl <= expires - now < ttl + bucket
        # Every moment of the bucket issues the same URL, so a reloaded page hits the browser's cache.
        first, last = expires - ttl - bucket + 1, expires - ttl
        assert url_expiry(first) == url_expiry(last) == expires
        assert url_expiry(first - 1) == expires - bucket


def test_urls_signed_with_a_retired_secret_still_verify_and_those_of_an_unknown_one_do_not():
    with override_settings(SECRET_KEY="the-old-secret-" * 4):
        old = issued(1, 2, ImageSize.THUMBNAIL, 1_700_000_000)
    with override_settings(SECRET_KEY="the-new-secret-" * 4, SECRET_KEY_FALLBACKS=["the-old-secret-" * 4]):
        assert signed_access(**old, now=1_700_000_000).refusal is None
    with override_settings(SECRET_KEY="the-new-secret-" * 4, SECRET_KEY_FALLBACKS=[]):
        assert signed_access(**old, now=1_700_000_000).refusal == "signature_invalid"


def test_missing_ids_never_verify():
    genuine = issued(1, 2, ImageSize.ORIGINAL, 1_700_000_000)
    assert signed_access(**{**genuine, "sample_id": None}, now=1_700_000_000).refusal == "signature_invalid"
    assert signed_access(**{**genuine, "dataset_id": None}, now=1_700_000_000).refusal == "signature_invalid"


def test_only_a_local_file_system_is_streamed_through_the_api(tmp_path):
    assert not storage_serves_files(FileSystemStorage(location=tmp_path))
    assert storage_serves_files(PresignedObjectStorage(location=tmp_path))
