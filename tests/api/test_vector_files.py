"""The scan matrices' files: written by the embeddings job, mapped by every process without reading the vectors
again, replaced when vectors are added, rebuilt when damaged, removed with their dataset; split codes follow
samples that move."""

import os
from pathlib import Path

import numpy as np
import pytest

from imagestudio.common.cache import clear_database_caches
from imagestudio.datasets.models import SPLIT_CODES, Sample
from imagestudio.datasets.services import dataset_delete, sample_update
from imagestudio.embeddings import store
from imagestudio.embeddings.models import Embedding
from imagestudio.embeddings.services import scores_for
from imagestudio.embeddings.store import encoder_for, matrix_get
from tests.api.test_embeddings import COLOURS, embed, ingest

pytestmark = pytest.mark.django_db(transaction=True)


def directories(settings, dataset):
    parent = settings.VECTOR_ROOT / f"d{dataset.id}"
    return sorted(p.name for p in parent.iterdir()) if parent.is_dir() else []


def stored_vectors(record, ids):
    rows = dict(Embedding.objects.filter(encoder=record, sample_id__in=ids.tolist()).values_list("sample_id", "vector"))
    return np.stack([np.frombuffer(rows[int(i)], dtype=np.float16) for i in ids]).astype(np.float64)


def no_vector_reads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the vectors were read from the database again")
    monkeypatch.setattr(store, "_vector_blocks", refuse)


def test_the_job_writes_the_files_and_a_new_process_maps_them(api, dataset, tiny_clip, settings, monkeypatch):
    ingest(api, dataset, COLOURS[:3])
    ingest(api, dataset, COLOURS[3:], split="dev")
    embed(api, dataset)
    _, record = encoder_for()
    assert len(directories(settings, dataset)) == 1  # the job wrote them (there is one space here: joint)
    clear_database_caches()  # another process: its cache is empty
    no_vector_reads(monkeypatch)
    matrix = matrix_get(dataset=dataset, record=record)
    query = np.random.default_rng(0).standard_normal(record.dim).astype(np.float32)
    query /= np.linalg.norm(query)  # scores are cosines: of a unit query
    ids, scores = scores_for(dataset=dataset, record=record, vector=query * 3)
    expected_ids = np.array(sorted(Sample.objects.filter(dataset=dataset).values_list("id", flat=True)))
    assert np.array_equal(ids, expected_ids) and np.array_equal(matrix.sample_ids, expected_ids)
    np.testing.assert_allclose(scores, stored_vectors(record, ids) @ query, atol=4e-3)
    dev_ids, dev_scores = scores_for(dataset=dataset, record=record, vector=query, split="dev")
    assert dev_ids.tolist() == sorted(Sample.objects.filter(dataset=dataset, split="dev").values_list("id", flat=True))
    np.testing.assert_allclose(dev_scores, stored_vectors(record, dev_ids) @ query, atol=4e-3)


def test_added_vectors_replace_the_files_and_moved_samples_change_only_splits(api, dataset, tiny_clip, settings,
                                                                              monkeypatch):
    ingest(api, dataset, COLOURS[:2])
    embed(api, dataset)
    first = directories(settings, dataset)
    ingest(api, dataset, COLOURS[2:4], split="valid")
    embed(api, dataset)
    second = directories(settings, dataset)
    assert len(second) == 1 and second != first  # a new generation; the old one pruned
    _, record = encoder_for()
    assert len(matrix_get(dataset=dataset, record=record).sample_ids) == 4
    moved = Sample.objects.filter(dataset=dataset, split="train").order_by("id").first()
    no_vector_reads(monkeypatch)
    sample_update(sample=moved, split="test")
    matrix = matrix_get(dataset=dataset, record=record)
    assert matrix.splits[np.searchsorted(matrix.sample_ids, moved.id)] == SPLIT_CODES["test"]
    query = np.ones(record.dim, dtype=np.float32)
    assert scores_for(dataset=dataset, record=record, vector=query, split="test")[0].tolist() == [moved.id]
    assert moved.id not in scores_for(dataset=dataset, record=record, vector=query, split="train")[0]
    assert directories(settings, dataset) == second


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_damaged_files_are_rebuilt_from_the_database(api, dataset, tiny_clip, settings, damage):
    ingest(api, dataset, COLOURS[:3])
    embed(api, dataset)
    _, record = encoder_for()
    directory = settings.VECTOR_ROOT / f"d{dataset.id}" / directories(settings, dataset)[0]
    if damage == "missing":
        (directory / "vectors.npy").unlink()
    else:
        np.save(directory / "ids.npy", np.arange(2, dtype=np.int64))
    clear_database_caches()
    matrix = matrix_get(dataset=dataset, record=record)
    assert len(matrix.sample_ids) == 3 and (directory / "vectors.npy").is_file()
    query = np.ones(record.dim, dtype=np.float32)
    np.testing.assert_allclose(matrix.score(query)[1], stored_vectors(record, matrix.sample_ids) @ query,
                               atol=4e-3 * np.linalg.norm(query))


def test_deleting_the_dataset_removes_its_files(api, dataset, tiny_clip, settings):
    ingest(api, dataset, COLOURS[:2])
    embed(api, dataset)
    assert directories(settings, dataset)
    dataset_delete(dataset=dataset)
    assert directories(settings, dataset) == []


def test_image_queries_and_allocations_find_the_record_without_loading_the_model(api, dataset, tiny_clip, settings,
                                                                                monkeypatch):
    """A web process answering image-similarity queries never holds the encoder: the embeddings job recorded its
    weights' fingerprint; a rewritten checkpoint changes the fingerprint, so the model is loaded again."""
    from imagestudio.embeddings import encoders, services, store

    ingest(api, dataset, COLOURS[:3])
    embed(api, dataset)
    sample_id = Sample.objects.filter(dataset=dataset).order_by("id").first().id
    clear_database_caches()
    encoders._encoders.clear()

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder was loaded")

    monkeypatch.setattr(store, "load_encoder", refuse)
    found = services.embeddings_search(dataset=dataset, sample_id=sample_id, limit=3)
    assert found["results"][0]["sample_id"] == sample_id
    assert api.post(f"/api/datasets/{dataset.id}/resources/", {}, format="json").status_code == 201
    with pytest.raises(AssertionError, match="loaded"):
        services.embeddings_search(dataset=dataset, text="red", limit=3)  # a text must be encoded
    checkpoint = settings.CLIP_CHECKPOINT
    stamp = Path(checkpoint).stat()
    os.utime(checkpoint, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    with pytest.raises(AssertionError, match="loaded"):  # other weights may be in that file now
        services.embeddings_search(dataset=dataset, sample_id=sample_id, limit=3)
