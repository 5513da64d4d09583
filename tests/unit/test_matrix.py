"""The scan matrix: bfloat16 rows with a centring column, stored grouped by split, read through ascending ids;
and its memory-mapped files."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imagestudio.embeddings.matrix import Matrix, pack, packed_width, split_runs
from imagestudio.embeddings.vector_files import MatrixWriter, matrix_directory, matrix_open, matrix_prune


def clip_like(rng, n, dim):
    """Unit vectors sharing a common direction, as image embeddings do (pairwise cosine about 0.5)."""
    mean = rng.standard_normal(dim)
    rows = mean / np.linalg.norm(mean) + rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float16)


def exact(vectors, query):
    return vectors.astype(np.float64) @ np.asarray(query, dtype=np.float64)


def ascending_matrix(vectors, splits):
    n = len(vectors)
    return Matrix(sample_ids=np.arange(10, 10 + n, dtype=np.int64), splits=np.asarray(splits, dtype=np.int8),
                  vectors=pack(vectors), dim=vectors.shape[1], version=1)


def test_rows_are_padded_to_64_bytes_with_a_centring_column():
    assert [packed_width(d) for d in (16, 31, 32, 384, 512)] == [32, 32, 64, 416, 544]
    packed = pack(np.eye(3, 5, dtype=np.float32))
    assert packed.dtype == torch.bfloat16 and packed.shape == (3, 32)
    assert (packed[:, 5] == 1).all() and (packed[:, 6:] == 0).all()


def test_centring_keeps_scores_distinct_and_close_to_exact():
    """A bfloat16 product rounds a score near 0.7 to steps of 2^-8: without the centring column hundreds of rows
    would share each score. With it the error stays near float16's own."""
    rng = np.random.default_rng(0)
    vectors = clip_like(rng, 20_000, 512)
    query = vectors[3].astype(np.float32) + 0.3 * rng.standard_normal(512).astype(np.float32) / np.sqrt(512)
    ids, scores = ascending_matrix(vectors, np.zeros(20_000)).score(query)
    truth = exact(vectors, query)
    error = np.abs(scores - truth)
    assert error.mean() < 3e-4 and error.max() < 4e-3
    assert len(np.unique(scores)) > 2_000
    top = set(np.argsort(-truth)[:50])
    assert len(top & set(np.argsort(-scores, kind="stable")[:50])) >= 45


def test_a_query_norm_scales_the_scores_and_a_zero_query_scores_zero():
    rng = np.random.default_rng(1)
    vectors = clip_like(rng, 500, 64)
    matrix = ascending_matrix(vectors, np.zeros(500))
    query = rng.standard_normal(64).astype(np.float32) * 7
    np.testing.assert_allclose(matrix.score(query)[1], exact(vectors, query), atol=4e-3 * np.linalg.norm(query))
    assert not matrix.score(np.zeros(64))[1].any()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=300), st.integers(0, 3), st.booleans(), st.integers(0, 99))
def test_a_split_scores_exactly_its_rows_in_any_layout(splits, wanted, grouped, seed):
    """Whatever the layout (ascending ids, or stored grouped by split as the files are) and however the split's
    rows are scattered, a split's scores are those of its samples, ids ascending."""
    rng = np.random.default_rng(seed)
    splits = np.array(splits, dtype=np.int8)
    n = len(splits)
    vectors = clip_like(rng, n, 32)
    ids = np.sort(rng.choice(10 * n + 10, size=n, replace=False)).astype(np.int64)
    if grouped:
        stored_row = np.empty(n, dtype=np.int64)
        stored_row[np.argsort(splits, kind="stable")] = np.arange(n)
        stored = np.empty_like(vectors)
        stored[stored_row] = vectors
        matrix = Matrix(sample_ids=ids, splits=splits, vectors=pack(stored), dim=32, version=1, rows=stored_row)
    else:
        matrix = Matrix(sample_ids=ids, splits=splits, vectors=pack(vectors), dim=32, version=1)
    query = rng.standard_normal(32).astype(np.float32)
    got_ids, got = matrix.score(query, split=wanted)
    keep = splits == wanted
    assert np.array_equal(got_ids, ids[keep])
    np.testing.assert_allclose(got, exact(vectors[keep], query), atol=4e-3 * np.linalg.norm(query))
    all_ids, everything = matrix.score(query)
    assert np.array_equal(all_ids, ids)
    np.testing.assert_allclose(everything, exact(vectors, query), atol=4e-3 * np.linalg.norm(query))
    picked = rng.choice(n, size=min(n, 5), replace=False)
    np.testing.assert_allclose(matrix.features(picked), vectors[picked].astype(np.float32), atol=4e-3)


def test_split_runs():
    runs = split_runs(np.array([2, 2, 0, 0, 0, 2, 1]))
    assert {code: r.tolist() for code, r in runs.items()} == {0: [[2, 5]], 1: [[6, 7]], 2: [[0, 2], [5, 6]]}
    assert split_runs(np.array([], dtype=np.int8)) == {}


@settings(max_examples=30, deadline=None)
@given(splits=st.lists(st.integers(0, 3), min_size=1, max_size=200), block=st.integers(1, 64), seed=st.integers(0, 99))
def test_files_round_trip_whatever_the_blocks(tmp_path_factory, splits, block, seed):
    rng = np.random.default_rng(seed)
    splits = np.array(splits, dtype=np.int8)
    n = len(splits)
    ids = np.sort(rng.choice(5 * n + 5, size=n, replace=False)).astype(np.int64)
    vectors = clip_like(rng, n, 24)
    directory = matrix_directory(tmp_path_factory.mktemp("vectors"), 7, 3, "1-abc")
    writer = MatrixWriter(directory, ids, splits, 24)
    for start in range(0, n, block):
        writer.put(vectors[start:start + block])
    writer.commit()
    sample_ids, order, mapped = matrix_open(directory)
    assert np.array_equal(sample_ids, ids)
    stored_splits = np.empty_like(splits)
    stored_splits[order] = splits
    assert np.all(np.diff(stored_splits) >= 0)  # grouped by split
    matrix = Matrix(sample_ids=sample_ids, splits=splits, vectors=mapped, dim=24, version=1, rows=order)
    direct = ascending_matrix(vectors, splits)
    query = rng.standard_normal(24).astype(np.float32)
    for split in (None, 0, 1, 2, 3):
        assert np.array_equal(matrix.score(query, split)[1], direct.score(query, split)[1])


def test_an_incomplete_directory_is_not_opened_and_prune_keeps_one(tmp_path):
    ids = np.arange(4, dtype=np.int64)
    writer = MatrixWriter(matrix_directory(tmp_path, 1, 2, "1-a"), ids, np.zeros(4, np.int8), 8)
    writer.put(np.eye(4, 8, dtype=np.float32))
    try:
        writer.commit()
    except ValueError:
        raise AssertionError("four rows were written") from None
    short = MatrixWriter(matrix_directory(tmp_path, 1, 2, "2-b"), ids, np.zeros(4, np.int8), 8)
    short.put(np.eye(2, 8, dtype=np.float32))
    try:
        short.commit()
        raise AssertionError("a directory missing rows must not be committed")
    except ValueError:
        short.abort()
    assert matrix_open(matrix_directory(tmp_path, 1, 2, "2-b")) is None
    (matrix_directory(tmp_path, 1, 2, "3-c") / "ids.npy").parent.mkdir(parents=True)
    assert matrix_open(matrix_directory(tmp_path, 1, 2, "3-c")) is None
    matrix_prune(tmp_path, 1, 2, keep="e2-v1-a")
    assert sorted(p.name for p in (tmp_path / "d1").iterdir()) == ["e2-v1-a"]
    matrix_prune(tmp_path, 1, 2)
    assert not any((tmp_path / "d1").iterdir())
