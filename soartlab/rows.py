"""Rows read on demand: a data set that stays on disk, read a batch at a time.

`ArrowRows` is a converted source (see `soartlab.sources`): one memory-mapped Arrow file
written with ``datasets``, a column ``x`` of fixed-size lists (uint8 for images, float32
otherwise) and a ``label`` column, read by index without copying the file into memory.
`RowView` is a subset of it (the training or the held-out split). Both answer the few
things training and evaluation ask of a sample matrix: ``len``, ``shape`` ``(N, d)`` and
``rows[index]`` (a slice or an integer array) → float32 ``(k, d)``, decoded and scaled
per batch. Peak memory is the batch, never the data set.

`fit_normalization` computes a `Normalization` in one streaming pass over such rows (or
directly on an in-memory array), and `on_device` gives the training loop something to
index with device tensors, whether the samples are an array or rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from soartlab.data import STD_FLOOR, Normalization
from soartlab.errors import DataError

DATA_FILE = "data.arrow"
META_FILE = "source.json"
STREAM_BATCH = 4096  # rows per read in a streaming pass, at most
STREAM_BATCH_BYTES = 32 * 2**20  # and at most this much float32 per read


def batch_rows(width: int) -> int:
    """Rows per streaming read of ``width``-wide float32 samples: `STREAM_BATCH`, fewer
    for wide samples, so a read stays within `STREAM_BATCH_BYTES`."""
    return max(1, min(STREAM_BATCH, STREAM_BATCH_BYTES // (4 * max(int(width), 1))))


class ArrowRows:
    """The rows of a converted source folder (``data.arrow`` + ``source.json``)."""

    def __init__(self, folder: str | Path) -> None:
        from datasets import Dataset

        self.folder = Path(folder)
        meta = json.loads((self.folder / META_FILE).read_text(encoding="utf-8"))
        self.meta = meta
        self.label_names: tuple[str, ...] = tuple(meta["label_names"])
        self.input_shape: tuple[int, ...] = tuple(int(s) for s in meta["input_shape"])
        self.scale = np.float32(meta["scale"])  # stored value × scale = the sample's value
        self.fingerprint: str = meta["fingerprint"]
        self.source: str = meta.get("source", str(self.folder))
        self.names: list[str] | None = meta.get("names")  # file names of image folders
        self.dataset = Dataset.from_file(str(self.folder / DATA_FILE))  # memory-mapped
        table = self.dataset.data.table
        self.labels = table.column("label").to_numpy().astype(np.int64)
        # zero-copy NumPy views of the memory-mapped record batches, (rows, d) each
        d = int(np.prod(self.input_shape))
        self._chunks = [
            np.asarray(chunk.flatten().to_numpy(zero_copy_only=True)).reshape(-1, d)
            for chunk in table.column("x").chunks
        ]
        sizes = [len(c) for c in self._chunks]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if self._starts[-1] != len(self.labels):
            raise DataError(f"The cached source in {self.folder} is damaged; delete it.")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), int(np.prod(self.input_shape))

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 2

    @property
    def is_labelled(self) -> bool:
        from soartlab.data import UNLABELLED

        return list(self.label_names) != [UNLABELLED]

    def take(self, indices: np.ndarray) -> np.ndarray:
        """float32 (k, d) of the rows ``indices`` (k,), in that order."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(indices), self.shape[1]), dtype=np.float32)
        if len(indices) == 0:
            return out
        if indices.min() < 0 or indices.max() >= len(self):
            raise IndexError(f"row index out of range 0..{len(self) - 1}")
        chunk = np.searchsorted(self._starts, indices, side="right") - 1
        for c in np.unique(chunk):
            at = np.flatnonzero(chunk == c)
            out[at] = self._chunks[c][indices[at] - self._starts[c]]
        if self.scale != 1:
            out *= self.scale
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.take(_positions(key, len(self)))

    def subset(self, indices: np.ndarray) -> RowView:
        return RowView(self, np.asarray(indices, dtype=np.int64))

    def batches(self, batch_size: int | None = None):
        """(start, float32 (k, d)) over every row in order (`batch_rows` rows at a time)."""
        yield from _batches(self, batch_size)


class RowView:
    """Rows ``indices`` of an `ArrowRows`, as a sample matrix of their own."""

    def __init__(self, base: ArrowRows, indices: np.ndarray) -> None:
        self.base = base
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.base.shape[1]

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.base.take(self.indices[np.asarray(indices, dtype=np.int64)])

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.take(_positions(key, len(self)))

    def subset(self, indices: np.ndarray) -> RowView:
        return RowView(self.base, self.indices[np.asarray(indices, dtype=np.int64)])

    def batches(self, batch_size: int | None = None):
        yield from _batches(self, batch_size)


Rows = ArrowRows | RowView


def is_rows(X: Any) -> bool:
    """True for samples read on demand (`ArrowRows`, `RowView`), False for an array."""
    return isinstance(X, ArrowRows | RowView)


def _positions(key: Any, n: int) -> np.ndarray:
    if isinstance(key, slice):
        return np.arange(n)[key]
    if isinstance(key, int | np.integer):
        raise TypeError("index rows with a slice or an array of row numbers")
    key = np.asarray(key)
    if key.dtype == bool:
        return np.flatnonzero(key)
    return key.astype(np.int64)


def _batches(rows, batch_size: int | None):
    batch_size = batch_size or batch_rows(rows.shape[1])
    for start in range(0, len(rows), batch_size):
        yield start, rows[start : start + batch_size]


def fit_normalization(X, per_feature: bool) -> Normalization:
    """`Normalization.fit` of ``X`` (N, d): on an array as it is, on rows in one streaming
    pass (float64 sums merged batch by batch, Chan et al.), so memory stays one batch."""
    if not is_rows(X):
        return Normalization.fit(X, per_feature=per_feature)
    if len(X) == 0:
        raise DataError("Cannot fit a normalisation to zero samples.")
    count, mean, m2 = 0, None, None
    for _, batch in X.batches():
        values = batch.astype(np.float64)
        if not per_feature:
            values = values.reshape(-1, 1)
        n_b = len(values)
        mean_b = values.mean(axis=0)
        m2_b = ((values - mean_b) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2 = n_b, mean_b, m2_b
            continue
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta**2 * count * n_b / total
        count = total
    std = np.maximum(np.sqrt(m2 / count), STD_FLOOR)
    if per_feature:
        return Normalization(mean=mean.tolist(), std=std.tolist())
    return Normalization(mean=float(mean[0]), std=float(std[0]))


class DeviceRows:
    """Rows indexed by a device tensor of row numbers → a float32 tensor on ``device``:
    what the training loop indexes when the samples stay on disk."""

    def __init__(self, rows: Rows, device) -> None:
        self.rows = rows
        self.device = device

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        import torch

        batch = self.rows.take(index.detach().cpu().numpy())
        return torch.from_numpy(batch).to(self.device, non_blocking=True)


def on_device(X, device):
    """What `Trainer.train_epoch` indexes: ``X`` (N, d) as one tensor on ``device`` when it
    is an array (the upload path: fast), `DeviceRows` when it is read on demand."""
    import torch

    if is_rows(X):
        return DeviceRows(X, device)
    return torch.as_tensor(X, device=device)
