"""Large sources: Parquet shards, folders of class folders of images and save_to_disk
folders, converted once to an Arrow cache and read on demand (soartlab.sources,
soartlab.rows), trained on and predicted through the CLI."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from soartlab import data as D
from soartlab.cli import main
from soartlab.data import Normalization, from_arrays, load_dataset
from soartlab.errors import DataError
from soartlab.io import Limits, command_line_limits
from soartlab.lots import predict_to_file
from soartlab.prepare import dataset_fingerprint, prepare
from soartlab.rows import ArrowRows, fit_normalization, is_rows
from soartlab.sources import is_source, open_source
from soartlab.workflow import load_run, predict_lot

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("good", "dent", "scratch")
SHAPE = (6, 5)
TINY_TRAIN = ["--epochs", "1", "--pairs-per-epoch", "256", "--batch-size", "64", "--device", "cpu"]


def _samples(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 6, 5), three classes told apart by a bright row, and labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(NAMES)
    x = rng.integers(0, 60, (n, *SHAPE))
    x[np.arange(n), y * 2, :] += 180
    return x.astype(np.uint8), y


def _table(x: np.ndarray, y: np.ndarray) -> pa.Table:
    h, w = x.shape[1:]
    flat = x.reshape(len(x), -1)
    columns = {"label": pa.array([NAMES[k] for k in y])}
    columns |= {f"px_{r}_{c}": pa.array(flat[:, r * w + c]) for r in range(h) for c in range(w)}
    return pa.table(columns)


def write_shards(folder: Path, x: np.ndarray, y: np.ndarray, shards: int = 3) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(np.array_split(np.arange(len(x)), shards)):
        pq.write_table(_table(x[part], y[part]), folder / f"part-{k}.parquet")
    return str(folder / "*.parquet")


def write_image_folder(folder: Path, x: np.ndarray, y: np.ndarray) -> Path:
    for k, (image, label) in enumerate(zip(x, y, strict=True)):
        (folder / NAMES[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / NAMES[label] / f"{k:04d}.png")
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sources")
    x, y = _samples(90)
    glob = write_shards(tmp / "shards", x, y)
    pq.write_table(_table(x, y), tmp / "all.parquet")
    images = write_image_folder(tmp / "images", x, y)
    saved = tmp / "saved"
    from_arrays(x.astype(np.float32), y, NAMES).save_to_disk(str(saved))
    return {"tmp": tmp, "x": x, "y": y, "glob": glob, "images": images, "saved": saved}


def test_what_is_a_source(sources):
    assert is_source(sources["glob"]) and is_source(sources["images"])
    assert is_source(sources["saved"]) and not is_source(sources["tmp"] / "all.parquet")


def test_shards_read_as_the_single_file_does(sources):
    rows = open_source(sources["glob"], cache_dir=sources["tmp"] / "cache")
    single = load_dataset(sources["tmp"] / "all.parquet")
    X, y = D.to_arrays(single)
    assert is_rows(rows) and len(rows) == 90 and rows.input_shape == SHAPE
    assert rows.label_names == tuple(D.label_names(single))
    np.testing.assert_array_equal(rows[:], X)
    np.testing.assert_array_equal(rows.labels, y)
    np.testing.assert_array_equal(rows.take([89, 0, 45]), X[[89, 0, 45]])
    # the same samples give the same fingerprint, however they are read
    assert rows.fingerprint == dataset_fingerprint(single)


def test_conversion_happens_once_and_again_when_the_source_changes(sources, tmp_path):
    glob = write_shards(tmp_path / "s", sources["x"], sources["y"])
    lines: list[str] = []
    open_source(glob, cache_dir=tmp_path / "c", progress=lines.append)
    assert any("converting" in line for line in lines)
    lines.clear()
    open_source(glob, cache_dir=tmp_path / "c", progress=lines.append)
    assert lines == []
    pq.write_table(_table(sources["x"][:9], sources["y"][:9]), tmp_path / "s" / "part-9.parquet")
    assert len(open_source(glob, cache_dir=tmp_path / "c", progress=lines.append)) == 99
    assert any("converting" in line for line in lines)


def test_image_folder_is_class_folders_of_uint8_images(sources):
    rows = open_source(sources["images"], cache_dir=sources["tmp"] / "cache", image_size=SHAPE)
    assert rows.label_names == NAMES[:1] + tuple(sorted(NAMES[1:]))  # good first
    order = np.argsort([f"{NAMES[label]}/{k:04d}.png" for k, label in enumerate(sources["y"])])
    assert rows.names[:2] == ["dent/0001.png", "dent/0004.png"]
    expected = sources["x"][order].reshape(90, -1) / np.float32(255)
    np.testing.assert_allclose(rows[:], expected, atol=1e-7)
    names = np.array(rows.label_names)
    assert list(names[rows.labels]) == [NAMES[k] for k in sources["y"][order]]


def test_saved_dataset_reads_back(sources):
    rows = open_source(sources["saved"], cache_dir=sources["tmp"] / "cache")
    np.testing.assert_array_equal(rows[:], sources["x"].reshape(90, -1).astype(np.float32))
    assert rows.label_names == NAMES and rows.input_shape == SHAPE


def test_bad_sources_are_named(sources, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="No files match"):
        open_source(str(tmp_path / "none" / "*.parquet"), cache_dir=cache)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.parquet").write_bytes(b"")
    (tmp_path / "mixed" / "b.csv").write_text("label\n")
    with pytest.raises(DataError, match="'b.csv', which is not a .parquet file"):
        open_source(str(tmp_path / "mixed" / "*"), cache_dir=cache)
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.fromarray(sources["x"][0]).save(loose / "part.png")
    with pytest.raises(DataError, match="has no labels.*one folder of images per class"):
        open_source(loose, cache_dir=cache)
    unlabelled = open_source(loose, cache_dir=cache, require_labels=False, image_size=SHAPE)
    assert not unlabelled.is_labelled and len(unlabelled) == 1
    with pytest.raises(DataError, match="90 rows; the limit is 50"):
        open_source(sources["glob"], cache_dir=cache, limits=command_line_limits(max_rows=50))
    with pytest.raises(DataError, match="holds no images"):
        open_source(tmp_path / "mixed", cache_dir=cache)


def test_command_line_limits_lift_the_upload_caps_and_keep_the_header_checks():
    upload, cli = Limits(), command_line_limits()
    assert cli.max_rows > 10**12 and cli.max_file_bytes > 10**12
    assert cli.max_total_pixels > upload.max_total_pixels
    assert cli.max_image_pixels == upload.max_image_pixels
    assert cli.max_compression_ratio == upload.max_compression_ratio
    assert command_line_limits(max_rows=7).max_rows == 7


def test_streaming_normalisation_matches_the_in_memory_fit(sources):
    rows = open_source(sources["glob"], cache_dir=sources["tmp"] / "cache")
    X = rows[:]
    for per_feature in (False, True):
        streamed = fit_normalization(rows.subset(np.arange(90)), per_feature)
        whole = Normalization.fit(X, per_feature=per_feature)
        np.testing.assert_allclose(streamed.mean, whole.mean, rtol=1e-6)
        np.testing.assert_allclose(streamed.std, whole.std, rtol=1e-6)
    # a batch at a time: the same sums over batches of 7 rows
    assert [len(b) for _, b in rows.batches(7)][-1] == 90 - 7 * 12


def test_prepare_splits_rows_as_it_splits_the_dataset(sources):
    rows = open_source(sources["glob"], cache_dir=sources["tmp"] / "cache")
    single = prepare(load_dataset(sources["tmp"] / "all.parquet"), 0.2, 3)
    split = prepare(rows, 0.2, 3)
    np.testing.assert_array_equal(split.test_indices, single.test_indices)
    np.testing.assert_array_equal(split.x_test[:], single.x_test)
    np.testing.assert_array_equal(split.y_train, single.y_train)
    assert split.fingerprint == single.fingerprint and is_rows(split.x_train)


@pytest.mark.parametrize("kind", ["glob", "images", "saved"])
def test_cli_trains_and_predicts_on_a_large_source(sources, tmp_path, kind, capsys):
    data = str(sources[kind])
    assert main(["train", "--data", data, "--out", str(tmp_path / "run"), *TINY_TRAIN]) == 0
    assert "converting" in capsys.readouterr().err
    assert (tmp_path / ".soartlab-cache").is_dir()  # beside --out
    run = load_run(tmp_path / "run")  # what the app opens: record and references, no data
    assert run.references[0].shape == (72, run.record.model.embedding_dim)
    assert run.record.data.n_samples == 90 and len(run.record.data.test_indices) == 18
    out = tmp_path / "predictions.parquet"
    assert main(["predict", "--run", str(tmp_path / "run"), "--data", data, "--out", str(out)]) == 0
    streamed = pd.read_parquet(out)
    assert len(streamed) == 90 and streamed["index"].tolist() == list(range(90))
    assert set(streamed["decision"]) <= {"pass", "fail", "review"}
    err = capsys.readouterr().err
    assert "lot check: " in err and "drift: " in err  # the whole lot's, as in memory
    if kind == "glob":  # the same columns and decisions as the lot predicted in memory
        whole = predict_lot(run, load_dataset(sources["tmp"] / "all.parquet"))
        in_memory = whole.table
        pd.testing.assert_frame_equal(streamed, in_memory, check_dtype=False)
        assert whole.check.summary() in err
        # read in chunks of 25, the lot check is still the whole lot's
        rows = open_source(data, cache_dir=tmp_path / ".soartlab-cache")
        chunked = predict_to_file(run, rows, tmp_path / "c.csv", chunk_rows=25)
        assert chunked.check.summary() == whole.check.summary()
        assert [(d.index, round(d.shift_sd, 9)) for d in chunked.check.drift] == [
            (d.index, round(d.shift_sd, 9)) for d in whole.check.drift
        ]
        csv = tmp_path / "p.csv"
        assert (
            main(["predict", "--run", str(tmp_path / "run"), "--data", data, "--out", str(csv)])
            == 0
        )
        pd.testing.assert_frame_equal(
            pd.read_csv(csv, keep_default_na=False),
            pd.read_csv(
                pd.io.common.StringIO(in_memory.to_csv(index=False)), keep_default_na=False
            ),
        )
    if kind == "images":
        assert streamed["file"].iloc[0] == "dent/0001.png"
    assert main(["evaluate", "--run", str(tmp_path / "run"), "--data", data]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_samples"] == 90 and 0.0 <= metrics["accuracy"] <= 1.0


def test_cli_refuses_what_the_caps_given_refuse(sources, tmp_path, capsys):
    args = ["train", "--data", sources["glob"], "--out", str(tmp_path / "run"), *TINY_TRAIN]
    assert main([*args, "--max-rows", "10"]) == 2
    assert "the limit is 10 (--max-rows)" in capsys.readouterr().err
    small = tmp_path / "all.parquet"
    small.write_bytes((sources["tmp"] / "all.parquet").read_bytes())
    args[2] = str(small)
    assert main([*args, "--max-file-mb", "0.001"]) == 2
    assert "the limit is" in capsys.readouterr().err


# A child that trains on rows read from disk under RLIMIT_DATA. RLIMIT_AS cannot be used:
# importing torch alone maps about 2 GB of address space. RLIMIT_DATA counts the private
# writable memory a process allocates (heap and anonymous maps: every NumPy or torch
# array) but not the read-only file mapping of the Arrow cache; importing torch and
# soartlab leaves VmData at about 1.5 GB, mostly reserved and never touched, so the child
# sets its limit to its own VmData after the imports plus BUDGET.
_LIMITED_CHILD = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from soartlab.prepare import prepare
    from soartlab.rows import ArrowRows
    from soartlab.training import TrainConfig, Trainer, initial_model

    budget = int(sys.argv[2])
    vm_data = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmData"))
    resource.setrlimit(resource.RLIMIT_DATA, (vm_data * 1024 + budget, resource.RLIM_INFINITY))
    rows = ArrowRows(sys.argv[1])
    try:  # the samples as one float32 array do not fit the limit
        np.ones(rows.shape, dtype=np.float32)
        print("the data fits the limit"); sys.exit(3)
    except MemoryError:
        pass
    # the mlp: this is about the data's memory; a cnn's feature maps at 128×128 alone
    # would need more than the limit
    config = TrainConfig(epochs=1, pairs_per_epoch=512, batch_size=64, device="cpu",
                         hidden=(64, 64, 64), embedding_dim=32, arch="mlp")
    data = prepare(rows, config.test_size, config.seed)
    result = Trainer(config).fit(initial_model(config, data), data)
    print("trained", result.outcome.value, result.metrics["n_samples"], len(rows))
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print("peak RSS MiB", peak // 1024)
    """
)


def _save_uint8_images(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """A save_to_disk folder of uint8 images (N, H, W) (an Array2D column), built in Arrow."""
    from datasets import Array2D, ClassLabel, Dataset, DatasetInfo, Features
    from datasets.table import InMemoryTable

    n, h, w = images.shape
    features = Features(
        {"image": Array2D(shape=(h, w), dtype="uint8"), "label": ClassLabel(names=["c0", "c1"])}
    )
    lines = pa.ListArray.from_arrays(
        pa.array(np.arange(n * h + 1, dtype=np.int32) * w), pa.array(images.reshape(-1))
    )
    nested = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * h), lines)
    column = pa.ExtensionArray.from_storage(features.arrow_schema.field("image").type, nested)
    table = pa.table({"image": column, "label": pa.array(labels)}, schema=features.arrow_schema)
    Dataset(InMemoryTable(table), info=DatasetInfo(features=features)).save_to_disk(str(path))


@pytest.mark.slow
@pytest.mark.alone
def test_a_source_larger_than_the_memory_limit_trains_under_it(tmp_path):
    # 8,000 images of 128×128: 524 MB as float32, 131 MB as uint8 on disk; the child may
    # allocate 480 MB beyond what its imports left (Arrow's memory pool keeps some of what
    # it read: budgets of 320 to 400 MB failed runs in fresh clones), still under
    # the 524 MB of samples, which the child checks do not fit.
    n, size = 8000, (128, 128)
    images = np.random.default_rng(0).integers(0, 256, (n, *size), dtype=np.uint8)
    labels = np.arange(n) % 2
    images[labels == 1, :16] = 255
    _save_uint8_images(tmp_path / "saved", images, labels)
    del images
    folder = tmp_path / "saved"
    rows = open_source(folder, cache_dir=tmp_path / "cache")
    assert rows.shape == (n, 128 * 128)
    child = subprocess.run(
        [sys.executable, "-c", _LIMITED_CHILD, str(rows.folder), str(480 * 2**20)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        # RLIMIT_DATA counts address space reserved, not used: Arrow's default pool
        # (mimalloc) keeps freed pages for later and glibc reserves a 64 MB arena per
        # allocating thread, which failed runs by chance; the system allocator with two
        # arenas gives freed batches back
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
            "ARROW_DEFAULT_MEMORY_POOL": "system",
        },
    )
    assert child.returncode == 0, child.stdout + child.stderr[-3000:]
    assert f"trained finished {n // 5} {n}" in child.stdout


def test_rows_are_read_as_arrow_rows_of_the_cache(sources):
    rows = open_source(sources["glob"], cache_dir=sources["tmp"] / "cache")
    again = ArrowRows(rows.folder)
    assert again.fingerprint == rows.fingerprint and len(again) == 90
    with pytest.raises(IndexError):
        rows.take([90])
