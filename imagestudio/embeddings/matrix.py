"""Embedding matrices in memory and the scan over them. Pure numpy / torch, no Django.

The scan format is bfloat16: this CPU has native bfloat16 products (a 500,000 x 512 matrix-vector product
runs near the memory-bandwidth limit), float16 has none (converted on the fly, about twice as slow) and float32
doubles the bytes. Two details keep bfloat16's 8-bit mantissa from showing in the scores:
- torch returns a bfloat16 product, so a score near 0.3 would be rounded to a step of 2^-9: hundreds of samples
  would share each value and top-k order would be arbitrary. Each row carries one extra column of ones (the
  "centring" column) and the query the matching -c, with c a typical score of this query: the product rounds
  the small difference score - c, and c is added back in float32.
- rows are padded to a multiple of PAD_COLUMNS so every row starts on a 64-byte boundary.
Measured precision (bench/embedding_bench.py): see README, "Scan format".

Rows are stored grouped by split (ascending sample id within each split) so scoring one split reads only that
split's rows; `Matrix` hides that order: its `sample_ids` are ascending and every array it returns is aligned
with them.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

SCAN_DTYPE = torch.bfloat16
PAD_COLUMNS = 32  # 64 bytes of bfloat16
_CENTRE_SAMPLE = 1024  # rows whose exact scores set the centre c
_CALL_COST_ROWS = 400  # a separate product costs about as much as scanning this many rows (call overhead)


def packed_width(dim: int) -> int:
    """Columns of a stored row: the vector, the centring column, zeros up to a multiple of PAD_COLUMNS."""
    return -(-(dim + 1) // PAD_COLUMNS) * PAD_COLUMNS


def pack(vectors: np.ndarray) -> torch.Tensor:
    """(n, dim) unit vectors (any float dtype) -> the (n, packed_width(dim)) bfloat16 scan rows."""
    vectors = np.asarray(vectors)
    n, dim = vectors.shape
    packed = torch.zeros((n, packed_width(dim)), dtype=SCAN_DTYPE)
    packed[:, :dim] = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    packed[:, dim] = 1.0
    return packed


def split_runs(codes: np.ndarray) -> dict[int, np.ndarray]:
    """For each split code, its (start, stop) row ranges in `codes` (storage order), as an (r, 2) array."""
    codes = np.asarray(codes)
    if not len(codes):
        return {}
    starts = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1]
    stops = np.r_[starts[1:], len(codes)]
    return {int(code): np.stack([starts[codes[starts] == code], stops[codes[starts] == code]], axis=1)
            for code in np.unique(codes[starts])}


@dataclass
class Matrix:
    """A dataset's vectors under one encoder. Public arrays are aligned with `sample_ids` (ascending)."""

    sample_ids: np.ndarray  # int64, ascending
    splits: np.ndarray  # split codes (SPLIT_CODES in datasets/models.py) aligned with sample_ids, as they are now
    vectors: torch.Tensor  # (n, packed_width(dim)) bfloat16 scan rows in storage order (see module doc)
    dim: int
    version: int
    # storage row of each sample_ids position; None when storage order is ascending id order
    rows: np.ndarray | None = None
    _runs: dict = field(default=None, init=False, repr=False)
    _storage_ids: np.ndarray = field(default=None, init=False, repr=False)

    @property
    def nbytes(self):
        extra = 0 if self.rows is None else self.rows.nbytes
        return int(self.vectors.element_size() * self.vectors.nelement() + self.sample_ids.nbytes
                   + self.splits.nbytes + extra)

    def _storage_splits(self):
        if self.rows is None:
            return self.splits
        codes = np.empty_like(self.splits)
        codes[self.rows] = self.splits
        return codes

    def runs(self, code: int) -> np.ndarray:
        """(start, stop) storage ranges holding the rows of split `code`."""
        if self._runs is None:
            self._runs = split_runs(self._storage_splits())
        return self._runs.get(int(code), np.empty((0, 2), dtype=np.int64))

    def _ids_of_storage(self, ranges):
        """The sample ids of the storage rows of `ranges`, concatenated."""
        if self._storage_ids is None:
            if self.rows is None:
                self._storage_ids = self.sample_ids
            else:
                self._storage_ids = np.empty_like(self.sample_ids)
                self._storage_ids[self.rows] = self.sample_ids
        if len(ranges) == 1:
            return self._storage_ids[ranges[0][0]:ranges[0][1]]
        return np.concatenate([self._storage_ids[a:b] for a, b in ranges]) if len(ranges) else self.sample_ids[:0]

    def score(self, query: np.ndarray, split: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(sample ids ascending, float32 scores) of `query` against every row, or against the rows of split code
        `split` only: one product over that split's storage ranges when they are few, else over every row."""
        n = len(self.sample_ids)
        if split is None:
            return self.sample_ids, self._to_ascending(_scan(self.vectors, self.dim, query, [(0, n)]))
        runs = self.runs(split)
        wanted = int((runs[:, 1] - runs[:, 0]).sum()) if len(runs) else 0
        if len(runs) * _CALL_COST_ROWS + wanted >= n:  # scattered rows: one pass over all is cheaper
            keep = self.splits == split
            return self.sample_ids[keep], self._to_ascending(_scan(self.vectors, self.dim, query, [(0, n)]))[keep]
        scores = _scan(self.vectors, self.dim, query, runs)
        ids = self._ids_of_storage(runs)
        if not np.all(ids[1:] > ids[:-1]):  # one stored group is ascending already; several runs may not be
            order = np.argsort(ids, kind="stable")
            ids, scores = ids[order], scores[order]
        return ids, scores

    def _to_ascending(self, storage_scores):
        return storage_scores if self.rows is None else storage_scores[self.rows]

    def features(self, positions: np.ndarray) -> np.ndarray:
        """float32 vectors of the given sample_ids positions (only these rows are widened)."""
        rows = positions if self.rows is None else self.rows[positions]
        return self.vectors[torch.as_tensor(np.asarray(rows, dtype=np.int64))][:, :self.dim].float().numpy()


def _scan(vectors, dim, query, ranges):
    """query . row for the storage rows of `ranges`, concatenated, float32. See the module doc for the centring.
    One parallel torch region (the product): everything around it is small and single-threaded numpy, since on a
    busy machine each parallel region can wait a scheduler time slice for its second thread."""
    query = np.asarray(query, dtype=np.float32)
    total = sum(int(b - a) for a, b in ranges)
    norm = float(np.sqrt(np.einsum("i,i->", query, query)))
    if norm == 0 or total == 0:
        return np.zeros(total, dtype=np.float32)
    unit = np.zeros(vectors.shape[1], dtype=np.float32)
    unit[:dim] = query / norm
    centre = _centre(vectors, unit, ranges, total)
    unit[dim] = -centre
    packed = torch.from_numpy(unit).to(SCAN_DTYPE)
    parts = [torch.mv(vectors[int(a):int(b)], packed) for a, b in ranges if b > a]
    widened = [_widen(part.view(torch.int16).numpy()) for part in parts]
    product = widened[0] if len(widened) == 1 else np.concatenate(widened)
    product += np.float32(centre)
    product *= np.float32(norm)
    return product


def _widen(bfloat16_bits):
    """bfloat16 values (as their 16 bits) -> float32, exactly: they are the high half of a float32."""
    return (bfloat16_bits.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def _centre(vectors, unit, ranges, total):
    """The median exact score of an evenly spread sample of the rows, rounded to a bfloat16 value (so -c is
    exact in the query). `unit`: the float32 query padded to the row width, 0 on the centring column."""
    picks = np.linspace(0, total - 1, num=min(total, _CENTRE_SAMPLE)).astype(np.int64)
    lengths = np.array([b - a for a, b in ranges], dtype=np.int64)
    ends = np.cumsum(lengths)
    which = np.searchsorted(ends, picks, side="right")
    rows = np.array([a for a, _ in ranges], dtype=np.int64)[which] + picks - (ends - lengths)[which]
    # einsum, not BLAS: a BLAS call wakes its thread pool, which then competes with torch's for the product
    sample = np.einsum("ij,j->i", _widen(vectors.view(torch.int16).numpy()[rows]), unit)
    return float(torch.tensor(float(np.median(sample))).to(SCAN_DTYPE))
