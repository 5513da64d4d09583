"""Embedding matrices in memory: one contiguous float16 tensor per (dataset, encoder), and the scan over it.
Pure numpy / torch, no Django.
"""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Matrix:
    sample_ids: np.ndarray  # int64, ascending
    splits: np.ndarray  # small ints, see SPLIT_CODES in datasets/models.py
    vectors: torch.Tensor  # (n, dim) float16, contiguous, L2-normalised rows
    version: int

    @property
    def nbytes(self):
        return int(self.vectors.element_size() * self.vectors.nelement() + self.sample_ids.nbytes + self.splits.nbytes)


def score(vectors, query):
    """Dot product of every (unit) row with one vector: one matrix-vector product in the matrix's dtype, float32
    out. The product runs on the unit-length query and is scaled back after, so a float16 result cannot overflow;
    its precision is the float16 vectors' own (relative ~5e-4). For a unit query: the cosine similarity."""
    query = np.asarray(query, dtype=np.float32)
    norm = float(np.linalg.norm(query))
    if norm == 0:
        return np.zeros(len(vectors), dtype=np.float32)
    q = torch.as_tensor(query / norm, dtype=vectors.dtype)
    return torch.mv(vectors, q).float().numpy() * np.float32(norm)
