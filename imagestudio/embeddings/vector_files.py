"""Scan matrices as files: one directory per (dataset, encoder, vectors version), memory-mapped by every web and
worker process of a host, so they share one copy in the page cache and a new process maps it in milliseconds
instead of reading the database. The database stays the source of truth: a missing or damaged directory is
rebuilt from it. Pure numpy / torch, no Django.

    <root>/d<dataset>/e<encoder>-v<version>-<generation>/
        vectors.npy   (n, packed_width) uint16: the bfloat16 scan rows (matrix.pack), grouped by split
        ids.npy       (n,) int64: the sample id of each stored row
        order.npy     (n,) int64: the stored row of each sample in ascending id order
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .matrix import SCAN_DTYPE, pack, packed_width

_NAMES = ("vectors.npy", "ids.npy", "order.npy")


def matrix_directory(root: Path, dataset_id: int, encoder_id: int, name: str) -> Path:
    """`name`: the vectors' version and generation (models.EmbeddingSet), unique to one content."""
    return Path(root) / f"d{dataset_id}" / f"e{encoder_id}-v{name}"


class MatrixWriter:
    """Writes one matrix directory: create it with every row's id and split code (ascending id), then `put`
    vectors in ascending id order, block by block, then `commit` (an atomic rename; a concurrent writer of the
    same directory loses harmlessly)."""

    def __init__(self, directory: Path, ids: np.ndarray, split_codes: np.ndarray, dim: int):
        self.directory = Path(directory)
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.directory.parent))
        ids = np.asarray(ids, dtype=np.int64)
        # stored row of each id: grouped by split code, ascending id inside each group (a stable sort)
        self.order = np.empty(len(ids), dtype=np.int64)
        self.order[np.argsort(split_codes, kind="stable")] = np.arange(len(ids))
        stored_ids = np.empty_like(ids)
        stored_ids[self.order] = ids
        np.save(self._tmp / "ids.npy", stored_ids)
        np.save(self._tmp / "order.npy", self.order)
        self.dim = dim
        self._rows = np.lib.format.open_memmap(self._tmp / "vectors.npy", mode="w+", dtype=np.uint16,
                                               shape=(len(ids), packed_width(dim)))
        self._done = 0

    def put(self, vectors: np.ndarray) -> None:
        """The next block of vectors (float16 or float32, (k, dim)), in ascending id order."""
        k = len(vectors)
        packed = pack(vectors).view(torch.int16).numpy().view(np.uint16)
        self._rows[self.order[self._done:self._done + k]] = packed
        self._done += k

    def commit(self) -> Path:
        if self._done != len(self.order):
            raise ValueError(f"{self._done} vectors written of {len(self.order)}")
        self._rows.flush()
        del self._rows
        try:
            os.rename(self._tmp, self.directory)
        except OSError:  # another process wrote the same directory first: same content
            shutil.rmtree(self._tmp, ignore_errors=True)
        return self.directory

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def matrix_open(directory: Path) -> tuple[np.ndarray, np.ndarray, torch.Tensor] | None:
    """(sample ids ascending, stored row of each, the mapped bfloat16 rows), or None when the directory is
    missing or incomplete. The rows are mapped copy-on-write: shared with every process until written (never)."""
    directory = Path(directory)
    if not all((directory / name).is_file() for name in _NAMES):
        return None
    try:
        rows = np.load(directory / "vectors.npy", mmap_mode="c")
        stored_ids = np.load(directory / "ids.npy")
        order = np.load(directory / "order.npy")
    except (OSError, ValueError):
        return None
    if rows.dtype != np.uint16 or rows.ndim != 2 or len(stored_ids) != len(rows) or len(order) != len(rows):
        return None
    return stored_ids[order], order, torch.from_numpy(rows).view(SCAN_DTYPE)


def matrix_prune(root: Path, dataset_id: int, encoder_id: int, keep: str | None = None) -> None:
    """Remove a matrix's directories other than the one named `keep` (all with None), and abandoned temporary
    ones. A process that still maps an old one keeps reading it: unlinked files live until unmapped."""
    parent = Path(root) / f"d{dataset_id}"
    prefix = f"e{encoder_id}-v"
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        if entry.name.startswith(prefix) and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)


def warm(vectors: torch.Tensor) -> None:
    """Read every page once (dedicated resources: the first preview must not wait on the disk)."""
    step = max(1, (64 << 20) // max(1, vectors.shape[1] * vectors.element_size()))
    for start in range(0, len(vectors), step):
        vectors[start:start + step, 0].float().sum()
