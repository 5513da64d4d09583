"""Embedding matrices in memory: one contiguous float16 tensor per (dataset, encoder), and a per-process
LRU cache whose pinned entries (dedicated resources) are never evicted. Pure numpy / torch, no Django.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Matrix:
    sample_ids: np.ndarray  # int64, ascending
    splits: np.ndarray  # small ints, see SPLIT_CODES in store.py
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


class MatrixCache:
    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self._lock = threading.Lock()
        self._loading = {}

    def get(self, key, version, load, pinned_keys=()):
        """The matrix for `key` at `version`, loading it with `load()` when missing or stale."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.version == version:
                self._entries.move_to_end(key)
                return entry
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one loader per key; others wait for its result
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry.version == version:
                    return entry
            entry = load()
            with self._lock:
                self._entries[key] = entry
                self._entries.move_to_end(key)
                self._evict(set(pinned_keys) | {key})
            return entry

    def _evict(self, keep):
        total = sum(e.nbytes for e in self._entries.values())
        for key in list(self._entries):
            if total <= self.max_bytes:
                break
            if key not in keep:
                total -= self._entries.pop(key).nbytes

    def drop(self, key):
        with self._lock:
            self._entries.pop(key, None)

    def held(self):
        with self._lock:
            return {key: entry.nbytes for key, entry in self._entries.items()}
