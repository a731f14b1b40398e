"""Data sources larger than an upload, converted once to an Arrow cache.

Besides a single file (`soartlab.data.load_dataset`), the command line reads

- a folder of class folders of images (``good/0001.png``, ``scratch/0002.png``, ...); a
  folder of images without class folders is an unlabelled lot;
- a glob of Parquet shards (``'shards/*.parquet'``, quoted so the shell leaves it), each
  in a layout `load_dataset` reads (pixel or feature columns, a ``features`` list column,
  hub images);
- a folder a ``datasets.Dataset`` was saved to with ``save_to_disk``.

`open_source` converts such a source once, batch by batch, into a cache folder (one
Arrow file written with ``datasets``' ``ArrowWriter``: images as uint8, other values as
float32; the class names; the data's fingerprint) and returns its `ArrowRows`,
memory-mapped and read by index. The cache folder is named for the source's fingerprint
(every file's path, size and modification time, and the reading options), so a changed
source is converted again and an unchanged one is opened at once. Every batch gets the
checks of an upload (finite values, one image header at a time); the caps of an upload
do not apply (see `soartlab.io.command_line_limits`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from soartlab import data as D
from soartlab.errors import DataError, SoartLabError
from soartlab.io import Limits, checked_samples, command_line_limits, reading
from soartlab.io.images import IMAGE_SUFFIXES, decode_image
from soartlab.io.tables import _find_label_column, _labels, table_to_raw
from soartlab.rows import DATA_FILE, META_FILE, ArrowRows, batch_rows

CACHE_VERSION = "soartlab-source/1"
GLOB_CHARACTERS = "*?["
CACHE_DIR_NAME = ".soartlab-cache"

Progress = Callable[[str], None]


def is_source(spec: str | Path) -> bool:
    """True for what `open_source` reads (a folder, or a glob pattern); False for a single
    file, which `load_dataset` reads."""
    text = str(spec)
    return any(c in text for c in GLOB_CHARACTERS) or Path(text).is_dir()


def default_cache_dir(out: str | Path) -> Path:
    """The cache beside an output (a run folder or a predictions file): its parent's
    ``.soartlab-cache``, shared by every run and lot written there."""
    return Path(out).resolve().parent / CACHE_DIR_NAME


def open_source(
    spec: str | Path,
    *,
    cache_dir: str | Path,
    image_size: tuple[int, int] | None = None,
    input_shape: tuple[int, ...] | None = None,
    label_column: str = "label",
    require_labels: bool = True,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> ArrowRows:
    """The rows of ``spec`` (see the module docstring), converted into ``cache_dir`` unless
    already there. Under torchrun rank 0 converts while the others wait. `DataError` for a
    source that cannot be read, naming the file and what was expected."""
    from soartlab import distributed

    limits = limits or command_line_limits()
    kind, files = _resolve(spec)
    options = {
        "image_size": None if image_size is None else list(image_size),
        "input_shape": None if input_shape is None else list(input_shape),
        "label_column": label_column,
        # labels are read whenever the source has them, so training and predicting share
        # one conversion; whether they are required is checked on the converted rows
        "require_labels": False,
    }
    folder = Path(cache_dir) / _source_key(kind, files, options)
    if distributed.is_main() and not (folder / META_FILE).is_file():
        _convert(kind, spec, files, folder, options, limits, progress)
    distributed.barrier()
    rows = ArrowRows(folder)
    if require_labels and not rows.is_labelled:
        raise DataError(
            f"'{spec}' has no labels; training and evaluation need them: a "
            f"'{label_column}' column in every shard, or one folder of images per class "
            "(its name is the class), e.g. good/0001.png."
        )
    return rows


# --- what the source is ---------------------------------------------------------------------


def _resolve(spec: str | Path) -> tuple[str, list[Path]]:
    """("parquet" | "images" | "saved", the files that make it up, sorted)."""
    text = str(spec)
    if any(c in text for c in GLOB_CHARACTERS):
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if not files:
            raise DataError(
                f"No files match '{text}'. Expected Parquet shards, e.g. 'shards/*.parquet'."
            )
        others = [f.name for f in files if f.suffix.lower() != ".parquet"]
        if others:
            raise DataError(
                f"'{text}' matches {others[0]!r}, which is not a .parquet file; a glob must "
                "name Parquet shards only."
            )
        return "parquet", files
    root = Path(text)
    if not root.is_dir():
        raise DataError(f"No data at '{root}'.")
    if (root / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(
            f"'{root}' holds a DatasetDict (splits: {', '.join(splits)}); give one split's "
            f"folder, e.g. '{root / (splits[0] if splits else 'train')}'."
        )
    if (root / "state.json").is_file() and (root / "dataset_info.json").is_file():
        return "saved", sorted(p for p in root.iterdir() if p.is_file())
    images = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not images:
        raise DataError(
            f"'{root}' holds no images ({', '.join(IMAGE_SUFFIXES)}) and is not a folder saved "
            "with save_to_disk. Expected one folder of images per class."
        )
    deep = [p for p in images if len(p.relative_to(root).parts) > 2]
    if deep:
        raise DataError(
            f"'{deep[0].relative_to(root)}' is nested too deep; expected one folder of images "
            "per class directly under the folder."
        )
    return "images", images


def _source_key(kind: str, files: list[Path], options: dict) -> str:
    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(json.dumps([kind, options], sort_keys=True).encode())
    for f in files:
        stat = f.stat()
        digest.update(f"{f.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


# --- conversion -----------------------------------------------------------------------------


class _Reporter:
    """Progress lines, about every 2 seconds and at the end."""

    def __init__(self, progress: Progress | None, what: str, total: int) -> None:
        self.progress, self.what, self.total = progress, what, total
        self.started = self.last = time.monotonic()

    def __call__(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.progress is None or not (final or now - self.last > 2.0):
            return
        self.last = now
        share = done / max(self.total, 1)
        self.progress(
            f"converting {self.what}: {done:,}/{self.total:,} rows ({share:.0%}, "
            f"{now - self.started:.0f} s)"
        )


def _convert(
    kind: str,
    spec,
    files: list[Path],
    folder: Path,
    options: dict,
    limits: Limits,
    progress: Progress | None,
) -> None:
    from datasets import ClassLabel, Features, Sequence, Value
    from datasets.arrow_writer import ArrowWriter

    from soartlab.prepare import fingerprint

    reader = {"parquet": _ParquetShards, "images": _ImageFolder, "saved": _SavedDataset}[kind]
    source = reader(spec, files, options, limits)
    if source.n_rows > limits.max_rows:
        raise DataError(
            f"'{spec}' has {source.n_rows:,} rows; the limit is {limits.max_rows:,} (--max-rows)."
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    report = _Reporter(progress, str(spec), source.n_rows)
    try:
        names, shape, dtype = source.label_names, source.input_shape, source.dtype
        features = Features(
            {
                "x": Sequence(Value(dtype), length=math.prod(shape)),
                "label": ClassLabel(names=list(names)),
            }
        )
        done = 0
        with ArrowWriter(features=features, path=str(tmp / DATA_FILE)) as writer:
            for x, y in source.batches():
                storage = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
                writer.write_table(
                    pa.table(
                        {"x": storage, "label": pa.array(y, pa.int64())},
                        schema=features.arrow_schema,
                    )
                )
                done += len(y)
                report(done)
            writer.finalize()
        meta = {
            "version": CACHE_VERSION,
            "source": str(spec),
            "kind": kind,
            "label_names": list(names),
            "input_shape": list(shape),
            "scale": source.scale,
            "fingerprint": "",
            "names": source.row_names,
        }
        (tmp / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        rows = ArrowRows(tmp)
        meta["fingerprint"] = fingerprint(rows, rows.labels, names)
        del rows
        (tmp / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        report(done, final=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process converted it meanwhile
            if not (folder / META_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _LabelCodes:
    """Raw labels (as the readers return them) → class ids, for names known up front."""

    def __init__(self, raw_uniques: np.ndarray, name: str) -> None:
        y, self.names = D._encode_labels(raw_uniques, None, name)
        self.lookup = dict(zip(raw_uniques.tolist(), y.tolist(), strict=True))

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.fromiter((self.lookup[v] for v in raw.tolist()), dtype=np.int64, count=len(raw))


def _as_stored(flat: np.ndarray, dtype: str, scale: float) -> np.ndarray:
    """float32 samples (k, d) → what the cache stores (stored × scale = sample)."""
    if dtype == "float32":
        return flat
    return np.rint(flat / scale).astype(np.uint8)


class _ParquetShards:
    """Shards in any layout `load_dataset` reads from one Parquet file."""

    def __init__(self, spec, files: list[Path], options: dict, limits: Limits) -> None:
        self.files, self.options, self.limits = files, options, limits
        self.row_names = None
        schema = pq.ParquetFile(files[0]).schema_arrow
        self.n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        label = _find_label_column(
            schema.names, options["label_column"], files[0].name, options["require_labels"]
        )
        self.label = label
        self.codes = None
        if label is None:
            self.label_names = [D.UNLABELLED]
        else:
            uniques = []
            for f in files:
                with reading(f):
                    column = pq.read_table(f, columns=[label]).column(label)
                    uniques.append(np.unique(_labels(column, label, f.name)))
            self.codes = _LabelCodes(np.unique(np.concatenate(uniques)), str(spec))
            self.label_names = self.codes.names
        rest = [n for n in schema.names if n != label]
        if "image" in rest and not pa.types.is_integer(schema.field("image").type):
            self.dtype, self.scale = "uint8", 1.0 / 255.0  # decoded 8-bit images
        elif rest and all(schema.field(n).type == pa.uint8() for n in rest):
            self.dtype, self.scale = "uint8", 1.0
        else:
            self.dtype, self.scale = "float32", 1.0
        first = next(pq.ParquetFile(files[0]).iter_batches(batch_size=2))
        raw = self._raw(pa.Table.from_batches([first]), files[0].name)
        self.input_shape = _shape(raw, options)
        # uint8 columns need neither the float64 copy nor the finiteness check of a table
        # of numbers: they are read straight into the stored uint8 (the reader's order)
        self.uint8_columns = raw.columns if self.dtype == "uint8" and self.scale == 1.0 else None

    def _raw(self, table: pa.Table, name: str):
        return table_to_raw(
            table,
            name,
            self.limits,
            label_column=self.options["label_column"],
            image_size=_size(self.options),
            require_labels=self.options["require_labels"],
        )

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for f in self.files:
            start = 0
            with reading(f):
                size = batch_rows(math.prod(self.input_shape))
                for batch in pq.ParquetFile(f).iter_batches(batch_size=size):
                    where = f"{f.name} (rows {start + 1:,}-{start + batch.num_rows:,})"
                    start += batch.num_rows
                    table = pa.Table.from_batches([batch])
                    fast = self._uint8(table)
                    if fast is not None:
                        yield fast
                        continue
                    with _about(where):
                        raw = self._raw(table, f.name)
                        flat = checked_samples(raw, f.name, self.limits)
                    _check_width(flat, self.input_shape, where)
                    y = (
                        np.zeros(len(flat), np.int64)
                        if self.codes is None
                        else self.codes(raw.labels)
                    )
                    yield _as_stored(flat, self.dtype, self.scale), y

    def _uint8(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray] | None:
        """(uint8 samples, class ids) of a batch of uint8 columns without a missing value,
        the label column read as the reader reads it; None for any other batch (the
        reader then checks it and says what is wrong)."""
        columns = self.uint8_columns
        if columns is None or table.column_names.count(self.label) != (self.label is not None):
            return None
        if any(
            c not in table.column_names
            or table.column(c).type != pa.uint8()
            or table.column(c).null_count
            for c in columns
        ):
            return None
        x = np.empty((table.num_rows, len(columns)), dtype=np.uint8)
        for k, c in enumerate(columns):
            x[:, k] = table.column(c).to_numpy()
        if self.label is None:
            return x, np.zeros(table.num_rows, np.int64)
        column = table.column(self.label)
        if column.null_count:
            return None
        return x, self.codes(_labels(column, self.label, self.label))


def _size(options: dict) -> tuple[int, int] | None:
    """The image size asked for (None: each source's own, see `io.images.choose_image_size`)."""
    size = options["image_size"]
    return None if size is None else (int(size[0]), int(size[1]))


# Image headers read to find a folder's own size: enough to see the common size.
SIZE_SAMPLE = 256


def _folder_size(files: list[Path]) -> tuple[int, int]:
    """The most common (H, W) among the first `SIZE_SAMPLE` images' headers."""
    from PIL import Image as PILImage

    from soartlab.io.images import choose_image_size

    sizes = []
    for f in files[:SIZE_SAMPLE]:
        try:
            with PILImage.open(f) as image:
                sizes.append((image.height, image.width))
        except (OSError, ValueError):
            sizes.append((0, 0))  # unreadable: reported when the folder is converted
    return choose_image_size(sizes, None)[0]


class _ImageFolder:
    """One folder of images per class (or images alone: an unlabelled lot)."""

    def __init__(self, spec, files: list[Path], options: dict, limits: Limits) -> None:
        self.root, self.files, self.limits = Path(spec), files, limits
        self.size = _size(options) or _folder_size(files)
        self.n_rows = len(files)
        self.dtype, self.scale = "uint8", 1.0 / 255.0
        self.input_shape = _shape(None, options, self.size)
        relative = [f.relative_to(self.root) for f in files]
        self.row_names = [r.as_posix() for r in relative]
        classes = [r.parts[0] if len(r.parts) == 2 else None for r in relative]
        if any(c is None for c in classes):
            if options["require_labels"] or any(c is not None for c in classes):
                loose = next(r for r, c in zip(relative, classes, strict=True) if c is None)
                raise DataError(
                    f"'{loose}' lies directly in '{self.root}'; expected one folder of images "
                    "per class (its name is the class), e.g. good/0001.png."
                )
            self.label_names, self.ids = [D.UNLABELLED], np.zeros(len(files), np.int64)
        else:
            self.label_names = D._class_order(sorted(set(classes)))
            position = {n: k for k, n in enumerate(self.label_names)}
            self.ids = np.array([position[c] for c in classes], dtype=np.int64)

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        size = batch_rows(math.prod(self.size))
        for start in range(0, len(self.files), size):
            part = self.files[start : start + size]
            images = np.empty((len(part), math.prod(self.size)), dtype=np.float32)
            for k, f in enumerate(part):
                member = self.row_names[start + k]
                images[k] = decode_image(f.read_bytes(), member, self.size, self.limits).reshape(-1)
            yield _as_stored(images, self.dtype, self.scale), self.ids[start : start + len(part)]


class _SavedDataset:
    """A folder written by ``Dataset.save_to_disk``."""

    def __init__(self, spec, files: list[Path], options: dict, limits: Limits) -> None:
        from datasets import Array2D, ClassLabel, load_from_disk

        self.options, self.limits, self.name = options, limits, Path(spec).name
        self.row_names = None
        with reading(Path(spec)):
            self.dataset = load_from_disk(str(spec))
        self.n_rows = len(self.dataset)
        features = self.dataset.features
        label = _find_label_column(
            list(features), options["label_column"], self.name, options["require_labels"]
        )
        self.label = label
        self.array = next((c for c in ("image", "x") if isinstance(features.get(c), Array2D)), None)
        self.codes, self.stored = None, None
        if label is None:
            self.label_names = [D.UNLABELLED]
        elif isinstance(features[label], ClassLabel):
            self.label_names = list(features[label].names)
            self.stored = {label: self.label_names}
        else:
            raw = _labels(self.dataset.data.table.column(label), label, self.name)
            self.codes = _LabelCodes(np.unique(raw), self.name)
            self.label_names = self.codes.names
        if self.array is not None:
            feature = features[self.array]
            self.input_shape = _shape(None, options, tuple(feature.shape))
            self.dtype = "uint8" if feature.dtype == "uint8" else "float32"
            self.scale = 1.0
        else:
            from datasets import Image

            image = isinstance(features.get("image"), Image)
            self.dtype, self.scale = ("uint8", 1.0 / 255.0) if image else ("float32", 1.0)
            first = self.dataset.with_format("arrow")[:2]
            self.input_shape = _shape(self._raw(first), options)

    def _raw(self, table: pa.Table):
        return table_to_raw(
            table,
            self.name,
            self.limits,
            label_column=self.options["label_column"],
            image_size=_size(self.options),
            require_labels=self.options["require_labels"],
            stored_names=self.stored,
        )

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        start = 0
        size = batch_rows(math.prod(self.input_shape))
        for table in self.dataset.with_format("arrow").iter(batch_size=size):
            where = f"{self.name} (rows {start + 1:,}-{start + table.num_rows:,})"
            start += table.num_rows
            if self.array is not None:
                values = table.column(self.array).combine_chunks()
                if isinstance(values, pa.ExtensionArray):
                    values = values.storage
                while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type):
                    values = values.flatten()
                flat = values.to_numpy(zero_copy_only=False).reshape(table.num_rows, -1)
                if self.dtype == "float32":
                    with _about(where):
                        flat = D.finite_float32(flat, self.name, None)
                raw_labels = None if self.label is None else table.column(self.label).to_numpy()
            else:
                with _about(where):
                    raw = self._raw(table)
                    flat = checked_samples(raw, self.name, self.limits)
                flat = _as_stored(flat, self.dtype, self.scale)
                raw_labels = raw.labels
            _check_width(flat, self.input_shape, where)
            if raw_labels is None:
                y = np.zeros(table.num_rows, np.int64)
            elif self.codes is not None:
                y = self.codes(np.asarray(raw_labels))
            else:
                y = np.asarray(raw_labels, dtype=np.int64)
            yield flat, y


def _shape(raw, options: dict, natural: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The samples' shape: ``input_shape`` when given (its size checked), else the
    images' (H, W), else (d,)."""
    if natural is None:
        natural = raw.image_shape or (int(np.prod(raw.samples.shape[1:])),)
    wanted = options["input_shape"]
    if wanted is None:
        return tuple(natural)
    if math.prod(wanted) != math.prod(natural):
        raise DataError(
            f"input_shape {tuple(wanted)} holds {math.prod(wanted)} values, but each sample "
            f"has {math.prod(natural)}."
        )
    return tuple(wanted)


def _check_width(flat: np.ndarray, shape: tuple[int, ...], where: str) -> None:
    if flat.shape[1] != math.prod(shape):
        raise DataError(
            f"{where}: samples have {flat.shape[1]} values; the first rows of the source have "
            f"{math.prod(shape)}. Every shard must hold samples of one size."
        )


@contextmanager
def _about(where: str) -> Iterator[None]:
    """A `DataError` raised inside is told which rows of which file it is about."""
    try:
        yield
    except SoartLabError as exc:
        raise DataError(f"{where}: {exc}") from None
