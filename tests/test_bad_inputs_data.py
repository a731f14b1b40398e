"""BAD_INPUTS items 6–19: every bad data file ends in a DataError that says what is wrong."""

import io
import os
import struct
import zipfile
import zlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from soartlab import data
from soartlab.data import load_dataset
from soartlab.errors import DataError, SoartLabError
from soartlab.io import Limits, tables


def png(shape=(4, 5), value=100):
    buf = io.BytesIO()
    Image.fromarray(np.full(shape, value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def huge_png(width=100_000, height=100_000):
    """A PNG whose header declares width × height pixels (with a valid header CRC)."""
    raw = bytearray(png())
    ihdr = struct.pack(">II", width, height) + bytes(raw[24:29])
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(raw)


def make_zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, payload in members.items():
            if isinstance(name, zipfile.ZipInfo):
                zf.writestr(name, payload)
            else:
                zf.writestr(name, payload)
    return path


def good_members():
    return {"good/a.png": png(), "good/b.png": png(), "dent/c.png": png(value=20)}


def test_errors_are_value_errors():
    assert issubclass(DataError, SoartLabError) and issubclass(DataError, ValueError)


# --- 6. unsafe zip entries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../evil.png", "climbs out"),
        ("good/../../evil.png", "climbs out"),
        ("/etc/evil.png", "absolute path"),
        ("C:/evil.png", "absolute path"),
        ("good\\evil.png", "backslash"),
    ],
)
def test_unsafe_entry_names_refused(tmp_path, entry, reason):
    path = make_zip(tmp_path / "x.zip", {**good_members(), entry: png()})
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(DataError, match=rf"unsafe entry .*\(.*{reason}.*nothing was extracted"):
        load_dataset(path)
    assert sorted(os.listdir(tmp_path)) == before


def test_symlink_entry_refused(tmp_path):
    link = zipfile.ZipInfo("good/link.png")
    link.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK
    path = make_zip(tmp_path / "x.zip", {**good_members(), link: "/etc/passwd"})
    with pytest.raises(DataError, match=r"unsafe entry 'good/link.png' \(a symbolic link\)"):
        load_dataset(path)


# --- 7. zip bombs (also .npz) ---------------------------------------------------------------


def test_declared_total_size_refused(tmp_path):
    path = make_zip(tmp_path / "x.zip", good_members())
    with pytest.raises(
        DataError, match=r"would unpack to .*the limit is.*Nothing was decompressed"
    ):
        load_dataset(path, limits=Limits(max_uncompressed_bytes=100))


def test_member_count_refused(tmp_path):
    members = {f"good/{k}.png": png() for k in range(6)}
    path = make_zip(tmp_path / "x.zip", members)
    with pytest.raises(DataError, match=r"has 6 entries; the limit is 5"):
        load_dataset(path, limits=Limits(max_zip_members=5))


def test_compression_ratio_refused(tmp_path, monkeypatch):
    path = make_zip(tmp_path / "x.zip", {**good_members(), "good/zeros.bmp": bytes(4 << 20)})

    def never(*args, **kwargs):
        raise AssertionError("decompressed a zip bomb")

    monkeypatch.setattr(zipfile.ZipFile, "read", never)
    with pytest.raises(DataError, match=r"compression ratio of [\d,]+:1 .*zip bomb"):
        load_dataset(path)


def test_npz_bomb_refused(tmp_path):
    np.savez_compressed(tmp_path / "b.npz", X=np.zeros((1024, 1024)), y=np.zeros(1024))
    with pytest.raises(DataError, match="compression ratio"):
        load_dataset(tmp_path / "b.npz")
    np.savez(tmp_path / "s.npz", X=np.zeros((100, 10)), y=np.zeros(100))
    with pytest.raises(DataError, match="would unpack to"):
        load_dataset(tmp_path / "s.npz", limits=Limits(max_uncompressed_bytes=1000))


# --- 8. corrupt, encrypted, fake zips -------------------------------------------------------


def test_fake_zip(tmp_path):
    (tmp_path / "x.zip").write_text("label,a\ngood,1\n")
    with pytest.raises(DataError, match="not a valid zip"):
        load_dataset(tmp_path / "x.zip")


def test_truncated_zip(tmp_path):
    raw = make_zip(tmp_path / "x.zip", good_members()).read_bytes()
    (tmp_path / "x.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="not a valid zip"):
        load_dataset(tmp_path / "x.zip")


def test_corrupt_member_data(tmp_path):
    members = {"good/a.png": png((30, 30)), "dent/b.png": png((30, 30), 10)}
    raw = bytearray(make_zip(tmp_path / "x.zip", members, zipfile.ZIP_STORED).read_bytes())
    at = raw.find(b"IDAT")
    raw[at : at + 40] = bytes(40)  # bytes no longer match the stored CRC-32
    (tmp_path / "x.zip").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="not a valid zip: entry 'good/a.png'"):
        load_dataset(tmp_path / "x.zip")


def test_encrypted_zip(tmp_path):
    raw = bytearray(make_zip(tmp_path / "x.zip", good_members()).read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        while at != -1:
            raw[at + offset] |= 0x1  # the "encrypted" flag bit
            at = raw.find(signature, at + 4)
    (tmp_path / "x.zip").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="not a valid zip .*encrypted"):
        load_dataset(tmp_path / "x.zip")


# --- 9. huge image headers ------------------------------------------------------------------


def test_huge_image_header_refused_before_decoding(tmp_path, monkeypatch):
    path = make_zip(tmp_path / "x.zip", {**good_members(), "dent/big.png": huge_png()})
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or real_load(self))
    with pytest.raises(DataError, match=r"'x.zip/dent/big.png' declares .*pixels"):
        load_dataset(path)
    assert all(image.size != (100_000, 100_000) for image in decoded)


def test_image_pixel_limit_is_configurable(tmp_path):
    path = make_zip(tmp_path / "x.zip", good_members())
    with pytest.raises(DataError, match=r"declares 5×4 = 20 pixels; the limit is 10 pixels"):
        load_dataset(path, limits=Limits(max_image_pixels=10))


def test_huge_image_header_in_image_parquet(tmp_path):
    image = pa.array([{"bytes": png(), "path": "a.png"}, {"bytes": huge_png(), "path": "b.png"}])
    pq.write_table(pa.table({"image": image, "label": [0, 1]}), tmp_path / "i.parquet")
    with pytest.raises(DataError, match=r"row 2 \(b.png\)' declares 10,000,000,000 pixels"):
        load_dataset(tmp_path / "i.parquet")


# --- 10. truncated or non-image members -----------------------------------------------------


def test_truncated_image_member_named(tmp_path):
    truncated = png((40, 40))[:60]
    path = make_zip(tmp_path / "x.zip", {**good_members(), "dent/cut.png": truncated})
    with pytest.raises(DataError, match="'x.zip/dent/cut.png' is (truncated or corrupt|not an)"):
        load_dataset(path)


def test_non_image_members_named(tmp_path):
    path = make_zip(tmp_path / "x.zip", {**good_members(), "dent/fake.png": b"not an image"})
    with pytest.raises(DataError, match="'x.zip/dent/fake.png' is not an image"):
        load_dataset(path)
    path = make_zip(tmp_path / "y.zip", {**good_members(), "dent/notes.txt": b"hello"})
    with pytest.raises(DataError, match="entry 'dent/notes.txt' is not an image file"):
        load_dataset(path)


# --- 11. no class folders -------------------------------------------------------------------


def test_images_without_class_folders(tmp_path):
    path = make_zip(tmp_path / "x.zip", {"a.png": png(), "b.png": png()})
    with pytest.raises(DataError, match="no class folders.*one folder per class"):
        load_dataset(path)


def test_only_macosx_folder(tmp_path):
    path = make_zip(tmp_path / "x.zip", {"__MACOSX/good/._a.png": b"x", "__MACOSX/._b": b"y"})
    with pytest.raises(DataError, match="holds no images.*one folder per class"):
        load_dataset(path)


# --- 12. ragged CSV rows --------------------------------------------------------------------


def test_short_row_reports_line(tmp_path):
    (tmp_path / "r.csv").write_text("label,a,b\ngood,1,2\ndent,3\ngood,4,5\n")
    with pytest.raises(DataError, match="line 3 has 2 fields; the header has 3"):
        load_dataset(tmp_path / "r.csv")


def test_long_row_reports_line(tmp_path):
    (tmp_path / "r.csv").write_text("label,a,b\ngood,1,2\ngood,4,5\ndent,3,4,5\n")
    with pytest.raises(DataError, match="line 4 has 4 fields; the header has 3"):
        load_dataset(tmp_path / "r.csv")


# --- 13. NaN, inf, 1e400 --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e400", "", "NaN", "NA", "null", "#N/A"])
def test_non_finite_values_list_rows(tmp_path, bad):
    rows = ["good,1,2", f"dent,{bad},2", "good,1,2", f"dent,1,{bad}", "good,3,4"]
    (tmp_path / "n.csv").write_text("label,a,b\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"rows 2, 4 \(counted from 1\) hold missing, NaN or inf"):
        load_dataset(tmp_path / "n.csv")


def test_non_finite_in_npz_and_parquet(tmp_path):
    X = np.ones((6, 3))
    X[4, 1] = np.inf
    np.savez(tmp_path / "n.npz", X=X, y=np.arange(6) % 2)
    with pytest.raises(DataError, match=r"rows 5 \(counted from 1\)"):
        load_dataset(tmp_path / "n.npz")
    frame = pd.DataFrame({"label": [0, 1, 0], "a": [1.0, np.nan, 1e39]})
    frame.to_parquet(tmp_path / "n.parquet")
    with pytest.raises(DataError, match=r"rows 2, 3 \(counted from 1\)"):
        load_dataset(tmp_path / "n.parquet")


# --- 14. non-numeric feature column ---------------------------------------------------------


def test_text_in_feature_column_named(tmp_path):
    frame = pd.DataFrame({"label": ["good"] * 6, **{f"f{k}": [0.5] * 6 for k in range(18)}})
    frame["f17"] = frame["f17"].astype(object)
    frame.loc[4, "f17"] = "abc"
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(
        DataError,
        match=r"Column 'f17' holds text \('abc' in row 5\); feature columns must be numeric\.",
    ):
        load_dataset(tmp_path / "t.csv")


def test_features_column_with_text(tmp_path):
    frame = pd.DataFrame({"label": [0, 1], "features": ["[1, 2]", "[1, abc]"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="row 2 of 'features' is not a list of numbers"):
        load_dataset(tmp_path / "t.csv")
    frame = pd.DataFrame({"label": [0, 1], "features": ["[1, 2]", "[1, 2, 3]"]})
    frame.to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(DataError, match="row 2 of 'features' has 3 values; row 1 has 2"):
        load_dataset(tmp_path / "u.csv")


# --- 15. empty, header-only, non-UTF-8 ------------------------------------------------------


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(DataError, match="no data rows"):
        load_dataset(tmp_path / "e.csv")
    (tmp_path / "w.csv").write_text("\n\n  \n")
    with pytest.raises(DataError, match="no data rows"):
        load_dataset(tmp_path / "w.csv")


def test_header_only(tmp_path):
    (tmp_path / "h.csv").write_text("label,a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        load_dataset(tmp_path / "h.csv")
    pd.DataFrame({"label": pd.Series([], dtype=int), "a": []}).to_parquet(tmp_path / "h.parquet")
    with pytest.raises(DataError, match="no data rows"):
        load_dataset(tmp_path / "h.parquet")


def test_text_in_no_encoding_is_refused_not_garbled(tmp_path):
    # Shift-JIS and UTF-16 are read (tests/test_japanese_files.py); bytes that are text in
    # no encoding are refused, naming the file and what to do
    (tmp_path / "j.csv").write_bytes(b"label,a\n" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"'j.csv' cannot be read as text: .*'CSV UTF-8'"):
        load_dataset(tmp_path / "j.csv")
    (tmp_path / "u16.csv").write_bytes(b"\xff\xfe" + b"\x00\xd8" * 3)  # a lone surrogate
    with pytest.raises(DataError, match=r"'u16.csv' cannot be read as text: .*UTF-16"):
        load_dataset(tmp_path / "u16.csv")


def test_utf8_with_bom_and_japanese_labels_load(tmp_path):
    (tmp_path / "j.csv").write_bytes("label,a\n良品,1\n不良,2\n".encode("utf-8-sig"))
    assert sorted(data.label_names(load_dataset(tmp_path / "j.csv"))) == ["不良", "良品"]


# --- 16, 17. classes ------------------------------------------------------------------------


def test_one_class_loads_but_cannot_train(tmp_path):
    (tmp_path / "o.csv").write_text("label,a\ngood,1\ngood,2\ngood,3\n")
    ds = load_dataset(tmp_path / "o.csv")
    assert data.label_names(ds) == ["good"]
    with pytest.raises(DataError, match=r"need at least 2 classes \(only 'good' is present\)"):
        data.check_trainable(ds)


def test_class_with_one_sample_named(tmp_path):
    rows = "\n".join(["good,1"] * 6 + ["dent,2"] * 3 + ["crack,3"])
    (tmp_path / "c.csv").write_text("label,a\n" + rows + "\n")
    ds = load_dataset(tmp_path / "c.csv")
    with pytest.raises(DataError, match=r"Class 'crack' \(1\) has fewer than 2 samples"):
        data.check_trainable(ds)
    ok = ds.filter(lambda row: row["label"] != data.label_names(ds).index("crack"))
    warnings = data.check_trainable(ok)
    assert any("'dent' has only 3 samples" in w for w in warnings)


# --- 18. sizes ------------------------------------------------------------------------------


def test_oversized_file_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    path.write_text("label,a\n" + "good,1\n" * 100)
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("file was read"))
    with pytest.raises(DataError, match=r"'big.csv' is .* MiB; the limit is .*not read"):
        load_dataset(path, limits=Limits(max_file_bytes=100))


def test_too_many_rows_refused_before_parsing(tmp_path, monkeypatch):
    (tmp_path / "r.csv").write_text("label,a\n" + "good,1\n" * 11)
    monkeypatch.setattr(tables.pa_csv, "read_csv", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(DataError, match="has 11 data rows; the limit is 10 rows"):
        load_dataset(tmp_path / "r.csv", limits=Limits(max_rows=10))


def test_too_many_columns_refused_before_parsing(tmp_path, monkeypatch):
    (tmp_path / "c.csv").write_text("label,a,b,c,d\ngood,1,2,3,4\n")
    monkeypatch.setattr(tables.pa_csv, "read_csv", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(DataError, match="has 5 columns; the limit is 4 columns"):
        load_dataset(tmp_path / "c.csv", limits=Limits(max_columns=4))


def test_parquet_sizes_checked_from_footer(tmp_path, monkeypatch):
    pd.DataFrame({"label": [0, 1] * 10, "a": range(20)}).to_parquet(tmp_path / "p.parquet")
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: pytest.fail("read"))
    with pytest.raises(DataError, match="has 20 rows; the limit is 10 rows"):
        load_dataset(tmp_path / "p.parquet", limits=Limits(max_rows=10))
    with pytest.raises(DataError, match="has 2 columns; the limit is 1 columns"):
        load_dataset(tmp_path / "p.parquet", limits=Limits(max_columns=1))


def test_too_many_images_in_zip(tmp_path):
    path = make_zip(tmp_path / "x.zip", good_members())
    with pytest.raises(DataError, match="holds 3 images; the limit is 2"):
        load_dataset(path, limits=Limits(max_rows=2))


# --- 19. npz with object arrays -------------------------------------------------------------


def test_npz_object_array_refused(tmp_path):
    labels = np.array(["good", {"payload": 1}, "dent"], dtype=object)
    np.savez(tmp_path / "o.npz", X=np.ones((3, 2)), y=labels)
    with pytest.raises(DataError, match="'y' as an object array.*refused"):
        load_dataset(tmp_path / "o.npz")


def test_npz_missing_arrays_and_not_a_zip(tmp_path):
    np.savez(tmp_path / "m.npz", features=np.ones((3, 2)))
    with pytest.raises(DataError, match="no array 'X' or 'y'; arrays found: features"):
        load_dataset(tmp_path / "m.npz")
    np.save(tmp_path / "plain.npy", np.ones(3))
    (tmp_path / "plain.npy").rename(tmp_path / "n.npz")
    with pytest.raises(DataError, match="not a valid .npz"):
        load_dataset(tmp_path / "n.npz")


# --- formats and columns --------------------------------------------------------------------


def test_unknown_suffix_lists_formats(tmp_path):
    (tmp_path / "d.ods").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"unsupported file type '.ods'.*\.csv, \.tsv, \.parquet"):
        load_dataset(tmp_path / "d.ods")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="No data file"):
        load_dataset(tmp_path / "nope.csv")


def test_missing_label_column_names_columns_found(tmp_path):
    (tmp_path / "l.csv").write_text("class_name,a,b\ngood,1,2\n")
    with pytest.raises(
        DataError, match=r"no 'label' column; columns found: 'class_name', 'a', 'b'"
    ):
        load_dataset(tmp_path / "l.csv")


def test_duplicate_columns_and_missing_labels(tmp_path):
    (tmp_path / "d.csv").write_text("label,a,a\ngood,1,2\n")
    with pytest.raises(DataError, match="more than one column named 'a'"):
        load_dataset(tmp_path / "d.csv")
    (tmp_path / "m.csv").write_text("label,a\ngood,1\n,2\n")
    with pytest.raises(DataError, match="rows 2 have no 'label'"):
        load_dataset(tmp_path / "m.csv")


def test_semicolon_csv_hint(tmp_path):
    (tmp_path / "s.csv").write_text("label;a;b\ngood;1;2\n")
    with pytest.raises(DataError, match="separated by ';'"):
        load_dataset(tmp_path / "s.csv")


def test_corrupt_parquet(tmp_path):
    (tmp_path / "c.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(DataError, match="not a valid Parquet file"):
        load_dataset(tmp_path / "c.parquet")


def test_npz_header_declaring_more_than_it_holds(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 1000)}
    )
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as zf:
        zf.writestr("X.npy", buf.getvalue() + bytes(64))
        zf.writestr("y.npy", b"")
    with pytest.raises(DataError, match=r"not a valid .npz file: array 'X' declares shape"):
        load_dataset(tmp_path / "h.npz")
