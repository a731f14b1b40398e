"""soartlab.data: every loader format round-trips, and the helpers training relies on."""

import io
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from soartlab import data
from soartlab.data import Normalization, load_dataset
from soartlab.errors import DataError

H, W = 4, 5


@pytest.fixture
def table_arrays():
    rng = np.random.default_rng(0)
    X = rng.random((12, 6)).astype(np.float32)
    y = np.array([0, 1, 2] * 4)
    return X, y


def write_csv(path, X, labels, columns=None, sep=","):
    columns = columns or [f"f{k}" for k in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=columns)
    frame.insert(0, "label", labels)
    frame.to_csv(path, index=False, sep=sep)
    return path


def png_bytes(array, fmt="PNG", mode="L"):
    image = Image.fromarray(array)
    if mode != "L":
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


# --- tables ---------------------------------------------------------------------------------


def test_csv_integer_labels_round_trip(tmp_path, table_arrays):
    X, y = table_arrays
    ds = load_dataset(write_csv(tmp_path / "t.csv", X, y))
    assert data.label_names(ds) == ["0", "1", "2"]
    assert data.input_shape(ds) == (6,)
    assert "features" in ds.features
    X2, y2 = data.to_arrays(ds)
    assert X2.dtype == np.float32 and y2.dtype == np.int64
    np.testing.assert_allclose(X2, X, rtol=1e-6)
    np.testing.assert_array_equal(y2, y)


def test_csv_text_labels_sorted_with_good_first(tmp_path, table_arrays):
    X, _ = table_arrays
    labels = ["scratch", "good", "crack"] * 4
    ds = load_dataset(write_csv(tmp_path / "t.csv", X, labels))
    assert data.label_names(ds) == ["good", "crack", "scratch"]
    _, y = data.to_arrays(ds)
    assert [data.label_names(ds)[k] for k in y] == labels
    assert data.good_index(ds) == 0


def test_non_contiguous_integer_labels_keep_their_values_as_names(tmp_path, table_arrays):
    X, _ = table_arrays
    ds = load_dataset(write_csv(tmp_path / "t.csv", X, [3, 7, 10] * 4))
    assert data.label_names(ds) == ["3", "7", "10"]


def test_csv_labels_stay_exactly_as_written(tmp_path):
    """Integer-looking labels beyond int64 stay two classes, leading zeros stay, and a class
    named NA, N/A, null or None is a class, not a missing label."""
    labels = [
        "9223372036854775808",
        "9223372036854775809",
        "12345678901234567890",
        "001",
        "002",
        "NA",
        "N/A",
        "null",
        "None",
        "nan",
    ]
    rows = [f"{label},{k}" for k, label in enumerate(labels * 2)]
    (tmp_path / "l.csv").write_text("label,a\n" + "\n".join(rows) + "\n")
    ds = load_dataset(tmp_path / "l.csv")
    assert sorted(data.label_names(ds)) == sorted(labels)
    _, y = data.to_arrays(ds)
    assert [data.label_names(ds)[k] for k in y] == labels * 2


def test_plain_integer_text_labels_sort_by_value(tmp_path):
    (tmp_path / "i.csv").write_text("label,a\n10,1\n2,2\n-3,3\n10,4\n")
    assert data.label_names(load_dataset(tmp_path / "i.csv")) == ["-3", "2", "10"]
    (tmp_path / "z.csv").write_text("label,a\n10,1\n02,2\n1,3\n")  # not all plain: by text
    assert data.label_names(load_dataset(tmp_path / "z.csv")) == ["02", "1", "10"]


def test_only_an_empty_label_cell_is_missing(tmp_path):
    (tmp_path / "m.csv").write_text('label,a\ngood,1\n"",2\n  ,3\nNA,4\n')
    with pytest.raises(DataError, match=r"rows 2 have no 'label'"):
        load_dataset(tmp_path / "m.csv")
    (tmp_path / "s.csv").write_text("label,a\ngood,1\n  ,3\nNA,4\n")
    with pytest.raises(DataError, match=r"rows 2 have an empty label"):
        load_dataset(tmp_path / "s.csv")


def test_parquet_integer_labels_of_any_width_stay_distinct(tmp_path):
    big = pa.array([2**63, 2**63 + 1, 2**64 - 1, 2**63], pa.uint64())
    pq.write_table(pa.table({"label": big, "a": [1.0, 2.0, 3.0, 4.0]}), tmp_path / "u.parquet")
    ds = load_dataset(tmp_path / "u.parquet")
    assert data.label_names(ds) == [str(2**63), str(2**63 + 1), str(2**64 - 1)]
    np.testing.assert_array_equal(data.to_arrays(ds)[1], [0, 1, 2, 0])
    np.savez(tmp_path / "u.npz", X=np.ones((4, 2)), y=big.to_numpy())
    assert data.label_names(load_dataset(tmp_path / "u.npz")) == data.label_names(ds)


def test_float_labels_whole_numbers_only(tmp_path):
    frame = pd.DataFrame({"label": [1.0, 2.0, 1.0], "a": [1.0, 2.0, 3.0]})
    frame.to_parquet(tmp_path / "w.parquet")
    assert data.label_names(load_dataset(tmp_path / "w.parquet")) == ["1", "2"]
    for bad, shown in [(1.5, "1.5"), (1e20, r"1e\+20"), (np.inf, "inf"), (np.nan, "nan")]:
        frame = pd.DataFrame({"label": [1.0, bad, 2e20], "a": [1.0, 2.0, 3.0]})
        frame.to_parquet(tmp_path / "f.parquet")
        np.savez(tmp_path / "f.npz", X=np.ones((3, 2)), y=frame["label"].to_numpy())
        for suffix in ("parquet", "npz"):
            expected = rf"'f.{suffix}': the label in row 2 is {shown}; labels must be class names"
            if np.isnan(bad) and suffix == "parquet":  # pandas stores NaN as a null
                expected = r"rows 2 have no 'label'"
            with pytest.raises(DataError, match=expected):
                load_dataset(tmp_path / f"f.{suffix}")


def test_npz_byte_string_labels_and_names_are_utf8_text(tmp_path):
    y = np.array(["良品".encode(), b"ng", "良品".encode()])
    np.savez(tmp_path / "b.npz", X=np.ones((3, 2)), y=y)
    assert data.label_names(load_dataset(tmp_path / "b.npz")) == ["良品", "ng"]  # good first
    names = np.array([b"good", b"dent"])
    np.savez(tmp_path / "n.npz", X=np.ones((3, 2)), y=np.array([0, 1, 0]), label_names=names)
    assert data.label_names(load_dataset(tmp_path / "n.npz")) == ["good", "dent"]
    np.savez(tmp_path / "x.npz", X=np.ones((2, 2)), y=np.array([b"\xff\xfe", b"ok"]))
    with pytest.raises(DataError, match=r"'x.npz': y holds bytes that are not UTF-8 text"):
        load_dataset(tmp_path / "x.npz")


def test_tsv_round_trip(tmp_path, table_arrays):
    X, y = table_arrays
    ds = load_dataset(write_csv(tmp_path / "t.tsv", X, y, sep="\t"))
    np.testing.assert_allclose(data.to_arrays(ds)[0], X, rtol=1e-6)


def test_csv_features_column_of_lists(tmp_path, table_arrays):
    X, y = table_arrays
    frame = pd.DataFrame({"label": y, "features": [str(list(map(float, row))) for row in X]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    ds = load_dataset(tmp_path / "t.csv")
    np.testing.assert_allclose(data.to_arrays(ds)[0], X, rtol=1e-6)


def test_csv_pixel_columns_become_images_in_row_major_order(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.random((6, H, W)).astype(np.float32)
    columns = [f"px_{r}_{c}" for r in range(H) for c in range(W)]
    frame = pd.DataFrame(images.reshape(6, -1), columns=columns)
    frame = frame[list(reversed(columns))]  # column order must not matter
    frame.insert(0, "label", ["good", "bad"] * 3)
    frame.to_csv(tmp_path / "px.csv", index=False)
    ds = load_dataset(tmp_path / "px.csv")
    assert data.input_shape(ds) == (H, W)
    assert ds.features["image"].shape == (H, W)
    np.testing.assert_allclose(data.to_arrays(ds)[0], images.reshape(6, -1), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ds.with_format("numpy")[0]["image"]), images[0])


def test_input_shape_given_reshapes(tmp_path, table_arrays):
    X, y = table_arrays
    path = write_csv(tmp_path / "t.csv", X, y)
    ds = load_dataset(path, input_shape=(2, 3))
    assert data.input_shape(ds) == (2, 3)
    np.testing.assert_allclose(data.to_arrays(ds)[0], X, rtol=1e-6)
    with pytest.raises(DataError, match=r"input_shape \(4, 4\) holds 16 .* has 6 features"):
        load_dataset(path, input_shape=(4, 4))


def test_pandas_index_column_is_not_a_feature(tmp_path, table_arrays):
    X, y = table_arrays
    frame = pd.DataFrame(X, columns=[f"f{k}" for k in range(6)])
    frame.insert(0, "label", y)
    frame.to_csv(tmp_path / "t.csv")  # index written as an unnamed first column
    assert data.input_shape(load_dataset(tmp_path / "t.csv")) == (6,)


def test_label_column_option_and_case(tmp_path, table_arrays):
    X, y = table_arrays
    frame = pd.DataFrame(X, columns=[f"f{k}" for k in range(6)])
    frame.insert(0, "Class", y)
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert len(load_dataset(tmp_path / "t.csv", label_column="class")) == 12


def test_parquet_numeric_and_list_columns(tmp_path, table_arrays):
    X, y = table_arrays
    frame = pd.DataFrame(X, columns=[f"f{k}" for k in range(6)])
    frame.insert(0, "label", y)
    frame.to_parquet(tmp_path / "t.parquet")
    np.testing.assert_array_equal(data.to_arrays(load_dataset(tmp_path / "t.parquet"))[0], X)

    table = pa.table({"label": pa.array(["ok", "ng"] * 6), "features": pa.array(X.tolist())})
    pq.write_table(table, tmp_path / "l.parquet")
    ds = load_dataset(tmp_path / "l.parquet")
    assert data.label_names(ds) == ["ok", "ng"]
    np.testing.assert_array_equal(data.to_arrays(ds)[0], X)


def test_image_parquet_as_the_hub_writes_it(tmp_path):
    import datasets

    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (6, 8, 10), dtype=np.uint8)
    hub = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(p) for p in pixels], "label": [0, 1, 2, 0, 1, 2]},
        features=datasets.Features(
            {
                "image": datasets.Image(),
                "label": datasets.ClassLabel(names=["pass", "dent", "rust"]),
            }
        ),
    )
    hub.to_parquet(tmp_path / "train.parquet")
    schema = pq.read_schema(tmp_path / "train.parquet")
    assert pa.types.is_struct(schema.field("image").type)  # {bytes, path}

    ds = load_dataset(tmp_path / "train.parquet", image_size=(8, 10))
    assert data.label_names(ds) == ["pass", "dent", "rust"]
    assert data.input_shape(ds) == (8, 10)
    X, y = data.to_arrays(ds)
    np.testing.assert_allclose(X, pixels.reshape(6, -1) / 255.0, atol=1e-6)
    np.testing.assert_array_equal(y, [0, 1, 2, 0, 1, 2])
    ds = load_dataset(tmp_path / "train.parquet", image_size=(36, 39))
    assert data.input_shape(ds) == (36, 39)  # resized when asked
    assert data.file_notes(ds)["resized"] == 6
    ds = load_dataset(tmp_path / "train.parquet")  # by default: the images' own size
    assert data.input_shape(ds) == (8, 10) and data.file_notes(ds)["resized"] == 0


def test_image_parquet_without_metadata(tmp_path):
    blobs = [png_bytes(np.full((H, W), 51 * k, np.uint8)) for k in range(4)]
    image = pa.array([{"bytes": b, "path": f"{k}.png"} for k, b in enumerate(blobs)])
    pq.write_table(
        pa.table({"image": image, "label": ["a", "b", "a", "b"]}), tmp_path / "i.parquet"
    )
    ds = load_dataset(tmp_path / "i.parquet", image_size=(H, W))
    X, _ = data.to_arrays(ds)
    np.testing.assert_allclose(X[:, 0], [0, 0.2, 0.4, 0.6], atol=1e-6)


# --- arrays and archives --------------------------------------------------------------------


def test_npz_vectors_and_images(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.random((10, 12))
    np.savez(tmp_path / "v.npz", X=X, y=np.arange(10) % 2)
    ds = load_dataset(tmp_path / "v.npz")
    assert data.input_shape(ds) == (12,)
    np.testing.assert_allclose(data.to_arrays(ds)[0], X.astype(np.float32))

    images = rng.random((10, 3, 4)).astype(np.float32)
    names = np.array(["good", "chip", "crack"])
    np.savez_compressed(tmp_path / "i.npz", X=images, y=np.arange(10) % 3, label_names=names)
    ds = load_dataset(tmp_path / "i.npz")
    assert data.input_shape(ds) == (3, 4)
    assert data.label_names(ds) == ["good", "chip", "crack"]
    np.testing.assert_array_equal(data.to_arrays(ds)[0], images.reshape(10, -1))


def test_npz_string_labels(tmp_path):
    np.savez(tmp_path / "s.npz", X=np.eye(4), y=np.array(["ng", "OK", "ng", "OK"]))
    ds = load_dataset(tmp_path / "s.npz")
    assert data.label_names(ds) == ["OK", "ng"]
    assert data.good_index(ds) == 0


def make_image_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return path


def test_zip_of_class_folders(tmp_path):
    gray = np.arange(H * W, dtype=np.uint8).reshape(H, W) * 10
    members = {
        "lot/good/a.png": png_bytes(gray),
        "lot/good/b.jpg": png_bytes(np.full((H, W), 128, np.uint8), "JPEG"),
        "lot/scratch/c.bmp": png_bytes(gray, "BMP"),
        "lot/scratch/d.png": png_bytes(np.full((2 * H, 2 * W), 255, np.uint8), mode="RGB"),
        "__MACOSX/lot/good/._a.png": b"junk",
        "lot/.DS_Store": b"junk",
    }
    ds = load_dataset(make_image_zip(tmp_path / "lot.zip", members), image_size=(H, W))
    assert data.label_names(ds) == ["good", "scratch"]
    assert data.input_shape(ds) == (H, W)
    X, y = data.to_arrays(ds)
    np.testing.assert_array_equal(y, [0, 0, 1, 1])
    np.testing.assert_allclose(X[0], gray.reshape(-1) / 255.0, atol=1e-6)  # PNG
    np.testing.assert_allclose(X[1], 128 / 255.0, atol=0.02)  # JPEG, lossy
    np.testing.assert_allclose(X[2], gray.reshape(-1) / 255.0, atol=1e-6)  # BMP
    np.testing.assert_allclose(X[3], 1.0)  # RGB, twice the size: gray and resized


# --- from_arrays / to_arrays / names --------------------------------------------------------


def test_from_arrays_images_and_vectors():
    images = np.random.default_rng(4).random((6, H, W)).astype(np.float32)
    ds = data.from_arrays(images, [0, 1, 0, 1, 0, 1], ["good", "bad"])
    assert data.input_shape(ds) == (H, W) and data.is_image(ds)
    np.testing.assert_array_equal(data.to_arrays(ds)[0], images.reshape(6, -1))
    flat = data.from_arrays(images.reshape(6, -1), np.zeros(6, int), ["good"])
    assert data.input_shape(flat) == (H * W,) and not data.is_image(flat)
    shaped = data.from_arrays(images.reshape(6, -1), np.zeros(6, int), ["good"], (H, W))
    assert data.input_shape(shaped) == (H, W)
    with pytest.raises(DataError, match="2 names"):
        data.from_arrays(images, [0, 1, 2, 0, 1, 2], ["good", "bad"])


def test_to_arrays_follows_selection():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    ds = data.from_arrays(X, np.arange(10) % 2, ["a", "b"])
    part = ds.select([7, 2, 5])
    X2, y2 = data.to_arrays(part)
    np.testing.assert_array_equal(X2, X[[7, 2, 5]])
    np.testing.assert_array_equal(y2, [1, 0, 1])


def test_good_index():
    assert data.good_index(["crack", "OK", "dent"]) == 1
    assert data.good_index(["crack", "Pass"]) == 1
    assert data.good_index(["crack", "dent"]) == 0
    assert data.good_index(["crack", "dent"], good_class="dent") == 1
    assert data.good_index(["crack", "dent"], good_class=1) == 1
    with pytest.raises(DataError, match="'fine' is not one of the classes: crack, dent"):
        data.good_index(["crack", "dent"], good_class="fine")


# --- training checks, split, normalisation, pairs -------------------------------------------


def labelled(counts, d=3):
    y = np.repeat(np.arange(len(counts)), counts)
    X = np.random.default_rng(5).random((len(y), d)).astype(np.float32)
    return data.from_arrays(X, y, [f"c{k}" for k in range(len(counts))])


def test_check_trainable_warns_for_small_classes():
    assert data.check_trainable(labelled([10, 10])) == []
    warnings = data.check_trainable(labelled([10, 3]))
    assert len(warnings) == 1 and "'c1'" in warnings[0] and "3 samples" in warnings[0]


def test_split_is_stratified_and_deterministic():
    from soartlab.prepare import prepare

    ds = labelled([50, 30, 20])
    prepared = prepare(ds, test_size=0.2, seed=1)
    assert len(prepared.y_train) == 80 and len(prepared.y_test) == 20
    np.testing.assert_array_equal(np.bincount(prepared.y_test), [10, 6, 4])
    np.testing.assert_array_equal(np.bincount(prepared.y_train), [40, 24, 16])
    again = prepare(ds, test_size=0.2, seed=1)
    np.testing.assert_array_equal(again.x_train, prepared.x_train)


def test_split_refuses_what_cannot_be_stratified():
    from soartlab.prepare import prepare

    with pytest.raises(DataError, match="'c1' \\(1\\) has fewer than 2"):
        prepare(labelled([10, 1]))
    with pytest.raises(DataError, match="stratified"):
        prepare(labelled([2, 2, 2, 2]), test_size=0.1)
    with pytest.raises(DataError, match="test_size"):
        prepare(labelled([5, 5]), test_size=1.5)


def test_normalization_global_for_images_per_feature_for_tables():
    rng = np.random.default_rng(6)
    images = rng.normal(3.0, 2.0, (50, H, W)).astype(np.float32)
    norm = Normalization.fit(images)
    assert isinstance(norm.mean, float) and not norm.per_feature
    out = norm.apply(images)
    assert out.dtype == np.float32 and out.shape == images.shape
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-4

    table = rng.normal([0.0, 100.0, 5.0], [1.0, 10.0, 0.0], (40, 3))
    norm = Normalization.fit(table, per_feature=True)
    assert len(norm.mean) == 3 and norm.std[2] == pytest.approx(1e-6)
    out = norm.apply(table)
    np.testing.assert_allclose(out[:, :2].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(out[:, :2].std(axis=0), 1, atol=1e-4)
    assert np.isfinite(out).all()

    restored = Normalization.from_dict(norm.to_dict())
    np.testing.assert_array_equal(restored.apply(table), out)
    with pytest.raises(DataError, match="positive std"):
        Normalization.from_dict({"mean": 0.0, "std": 0.0})
    with pytest.raises(DataError, match="fitted to 3 features"):
        norm.apply(np.zeros((2, 4)))


def test_normalization_for_dataset_and_torch():
    import torch

    images = data.from_arrays(np.ones((4, H, W)) * [[[2.0]]], [0, 1, 0, 1], ["a", "b"])
    assert not Normalization.for_dataset(images).per_feature
    assert Normalization.for_dataset(labelled([3, 3])).per_feature
    norm = Normalization(mean=[1.0, 2.0], std=[2.0, 4.0])
    out = norm.apply(torch.tensor([[3.0, 6.0]]))
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0]]))


def test_sample_pairs_balance_and_targets():
    y = np.repeat([0, 1, 2, 3], [60, 30, 9, 1])
    i, j, target = data.sample_pairs(y, 4001, matched_fraction=0.25, seed=3)
    assert i.dtype == np.int64 and j.dtype == np.int64 and target.dtype == np.float32
    assert len(i) == 4001 and target.sum() == round(4001 * 0.25)
    np.testing.assert_array_equal(y[i] == y[j], target == 1)
    matched = target == 1
    assert np.all(i[matched] != j[matched])
    assert not np.any(y[i[matched]] == 3)  # a single sample cannot form a matched pair
    share = np.bincount(y[i[matched]], minlength=4)[:3] / matched.sum()
    np.testing.assert_allclose(share, [60 / 99, 30 / 99, 9 / 99], atol=0.05)
    assert np.any(y[i[~matched]] == 3) or np.any(y[j[~matched]] == 3)


def test_sample_pairs_deterministic_and_shuffled():
    y = np.arange(200) % 5
    first = data.sample_pairs(y, 500, seed=7)
    for a, b in zip(first, data.sample_pairs(y, 500, seed=7), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], data.sample_pairs(y, 500, seed=8)[0])
    assert 0 < first[2][:250].sum() < 250  # matched and unmatched are mixed


def test_sample_pairs_needs_two_classes_for_unmatched():
    with pytest.raises(DataError, match="at least 2 classes"):
        data.sample_pairs(np.zeros(10, int), 10)
    i, j, target = data.sample_pairs(np.zeros(10, int), 10, matched_fraction=1.0)
    assert target.all() and np.all(i != j)


# --- writing --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_save_dataset_round_trip(tmp_path, suffix):
    images = np.random.default_rng(8).random((6, H, W)).astype(np.float32)
    ds = data.from_arrays(images, [0, 1, 2, 0, 1, 2], ["good", "chip", "burr"])
    back = load_dataset(data.save_dataset(ds, tmp_path / f"out{suffix}"))
    assert data.input_shape(back) == (H, W)
    assert data.label_names(back) == ["good", "burr", "chip"]
    atol = 5e-5 if suffix == ".csv" else 0
    np.testing.assert_allclose(data.to_arrays(back)[0], images.reshape(6, -1), atol=atol)
