"""Files written the way Japanese Windows and Excel write them, read with the class names
intact; ID columns and labels as written; unlabelled image lots; tables out for Excel."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from soartlab import data
from soartlab.data import load_dataset
from soartlab.errors import DataError
from soartlab.export import csv_bytes, escape_formula, xlsx_bytes
from soartlab.io import Limits
from soartlab.io.archives import entry_name

CLASSES = ["良品", "キズ", "打痕"]


def frame(labels=CLASSES, n=12, d=3, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(rng.normal(size=(n, d)).round(3), columns=[f"f{k}" for k in range(d)])
    table.insert(0, "label", [labels[i % len(labels)] for i in range(n)])
    return table


def png(size=(8, 8), value=None, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size, dtype=np.uint8) if value is None else np.full(size, value)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


class Cp932Entry(zipfile.ZipInfo):
    """A zip entry whose name is stored as raw bytes without the UTF-8 flag, as Windows'
    "Send to → Compressed folder" writes cp932 names (zipfile itself would write UTF-8
    and set the flag)."""

    def __init__(self, name: str) -> None:
        super().__init__(name.encode("cp932").decode("cp437"))

    def _encodeFilenameFlags(self):
        return self.filename.encode("cp437"), self.flag_bits & ~0x800


# --- text encodings and line ends -------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding, shown",
    [
        ("cp932", "cp932"),  # Japanese Excel's "CSV"
        ("utf-8-sig", "utf-8-sig"),  # Excel's "CSV UTF-8"
        ("utf-16", "utf-16"),  # Excel's "Unicode text" (with a BOM)
        ("utf-8", "utf-8"),
    ],
)
def test_csv_in_every_encoding_japanese_pcs_write(tmp_path, encoding, shown):
    frame().to_csv(tmp_path / "lot.csv", index=False, encoding=encoding)
    ds = load_dataset(tmp_path / "lot.csv")
    assert data.label_names(ds) == ["良品", "キズ", "打痕"]  # 良品 first: the good class
    assert data.good_index(ds) == 0
    assert data.file_notes(ds)["encoding"] == shown
    np.testing.assert_allclose(data.to_arrays(ds)[0], frame()[["f0", "f1", "f2"]], atol=1e-6)


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"])
def test_cr_lf_and_crlf_line_ends_with_a_trailing_delimiter(tmp_path, ending):
    lines = frame().to_csv(index=False, lineterminator="\n").splitlines()
    text = ending.join(line + "," for line in lines) + ending  # Excel's trailing comma
    (tmp_path / "t.csv").write_bytes(text.encode("cp932"))
    ds = load_dataset(tmp_path / "t.csv")
    assert data.input_shape(ds) == (3,)  # the empty unnamed last column is dropped
    assert sorted(data.label_names(ds)) == sorted(CLASSES)


def test_a_trailing_column_with_values_is_still_a_column(tmp_path):
    (tmp_path / "t.csv").write_text("label,a,\ngood,1,2\nbad,2,x\n")
    with pytest.raises(DataError, match="holds text|ID column"):
        data.check_trainable(load_dataset(tmp_path / "t.csv", id_columns=[]))


def test_bytes_that_are_no_text_are_refused_naming_the_file(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"label,a\n" + bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"'b.csv' cannot be read as text.*Save it from Excel"):
        load_dataset(tmp_path / "b.csv")


# --- Excel workbooks --------------------------------------------------------------------------


def workbook(path, sheets: dict[str, pd.DataFrame]) -> None:
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, table in sheets.items():
            table.to_excel(writer, sheet_name=name, index=False)


def test_xlsx_first_sheet_by_default_and_a_chosen_one(tmp_path):
    second = frame(["OK", "NG"], seed=1)
    workbook(tmp_path / "book.xlsx", {"検査結果": frame(), "二月": second})
    ds = load_dataset(tmp_path / "book.xlsx")
    assert data.label_names(ds) == ["良品", "キズ", "打痕"]
    notes = data.file_notes(ds)
    assert notes["sheet"] == "検査結果" and notes["sheets"] == ["検査結果", "二月"]
    ds = load_dataset(tmp_path / "book.xlsx", sheet="二月")
    assert data.label_names(ds) == ["OK", "NG"] and data.good_index(ds) == 0
    np.testing.assert_allclose(data.to_arrays(ds)[0], second[["f0", "f1", "f2"]], atol=1e-9)
    with pytest.raises(DataError, match=r"'book.xlsx' has no sheet '三月'; its sheets are"):
        load_dataset(tmp_path / "book.xlsx", sheet="三月")


def test_xlsx_label_codes_stay_as_written(tmp_path):
    table = frame(["001", "002", "NA"])
    workbook(tmp_path / "codes.xlsx", {"Sheet1": table})
    assert data.label_names(load_dataset(tmp_path / "codes.xlsx")) == ["001", "002", "NA"]


def test_xls_and_fake_xlsx_are_refused_with_what_to_do(tmp_path):
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(100))
    with pytest.raises(DataError, match=r"'old.xls' is an old Excel 97–2003 .*Save As"):
        load_dataset(tmp_path / "old.xls")
    (tmp_path / "fake.xlsx").write_bytes(b"label,a\n1,2\n")
    with pytest.raises(DataError, match=r"'fake.xlsx' is not a valid Excel .xlsx file"):
        load_dataset(tmp_path / "fake.xlsx")


def test_xlsx_zip_bomb_is_refused_before_openpyxl_reads_it(tmp_path):
    workbook(tmp_path / "big.xlsx", {"s": frame(n=200, d=5)})
    with pytest.raises(DataError, match="would unpack to .* the limit is"):
        load_dataset(tmp_path / "big.xlsx", limits=Limits(max_uncompressed_bytes=8_000))


# --- zips with Japanese names -----------------------------------------------------------------


def test_zip_with_cp932_names_and_no_utf8_flag(tmp_path):
    path = tmp_path / "送る.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for k, name in enumerate(["良品", "キズ", "ソリ"]):  # ソ is 0x83 0x5c: a backslash byte
            for i in range(3):
                zf.writestr(Cp932Entry(f"検査/{name}/{i}.png"), png(seed=k * 3 + i))
        assert all(not info.flag_bits & 0x800 for info in zf.infolist())
    with zipfile.ZipFile(path) as zf:  # what zipfile alone makes of the names
        assert zf.infolist()[0].filename != "検査/良品/0.png"
        assert entry_name(zf.infolist()[0]) == "検査/良品/0.png"
    ds = load_dataset(path)
    assert data.label_names(ds) == ["良品", "キズ", "ソリ"]
    assert data.good_index(ds) == 0
    assert data.id_table(ds)["file"][:2] == ["検査/良品/0.png", "検査/良品/1.png"]


def test_zip_with_utf8_names_keeps_them(tmp_path):
    path = tmp_path / "u.zip"
    with zipfile.ZipFile(path, "w") as zf:  # zipfile sets the UTF-8 flag itself
        for name in ["正常", "異物"]:
            for i in range(2):
                zf.writestr(f"{name}/{i}.png", png(seed=i))
    assert data.label_names(load_dataset(path)) == ["正常", "異物"]


def test_a_cp437_name_that_is_not_cp932_stays_cp437(tmp_path):
    info = zipfile.ZipInfo("café/1.png")  # é is 0x82 in cp437: not valid cp932 before '/'
    info.filename = "caf\x82/1.png".encode("latin-1").decode("cp437")
    assert entry_name(info) == "café/1.png"


# --- image size from the data ----------------------------------------------------------------


def image_zip(path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in files.items():
            zf.writestr(name, blob)


def test_image_size_defaults_to_the_data_and_notes_resizing(tmp_path):
    files = {f"good/{i}.png": png((8, 8), seed=i) for i in range(3)}
    files |= {f"dent/{i}.png": png((8, 8), seed=9 + i) for i in range(2)}
    files["dent/big.png"] = png((16, 12))
    image_zip(tmp_path / "s.zip", files)
    ds = load_dataset(tmp_path / "s.zip")
    assert data.input_shape(ds) == (8, 8)  # not enlarged to 36×39
    notes = data.file_notes(ds)
    assert notes["image_size"] == "8×8" and notes["resized"] == 1
    assert notes["image_sizes"].startswith("8×8: 5 images")
    ds = load_dataset(tmp_path / "s.zip", image_size=(12, 10))
    assert data.input_shape(ds) == (12, 10) and data.file_notes(ds)["resized"] == 6


# --- ID columns and labels as written ---------------------------------------------------------


def test_text_columns_are_id_columns_kept_beside_the_samples(tmp_path):
    table = frame(["good", "scratch"])
    table.insert(1, "品番", [f"A-{i:05d}" for i in range(len(table))])
    table["lot"] = "L-7"
    table.to_csv(tmp_path / "ids.csv", index=False, encoding="cp932")
    ds = load_dataset(tmp_path / "ids.csv")
    assert data.id_columns(ds) == ["品番", "lot"]
    assert data.input_shape(ds) == (3,)  # never features
    assert data.id_table(ds)["品番"][:2] == ["A-00000", "A-00001"]
    # the user's choice: no ID columns means a text column is a feature (and refused)
    with pytest.raises(DataError, match=r"Column '品番' holds text \('A-00000' in row 1\)"):
        load_dataset(tmp_path / "ids.csv", id_columns=[])
    # a numeric column chosen as an ID is kept as written, and is no feature
    ds = load_dataset(tmp_path / "ids.csv", id_columns=["品番", "lot", "f2"])
    assert data.input_shape(ds) == (2,)
    assert data.id_table(ds)["f2"][0] == str(frame(["good", "scratch"])["f2"][0])
    with pytest.raises(DataError, match="has no column 'part' to use as an ID column"):
        load_dataset(tmp_path / "ids.csv", id_columns=["part"])


def test_a_mostly_numeric_column_with_a_stray_word_is_still_refused(tmp_path):
    table = frame()
    table["f1"] = table["f1"].astype(object)
    table.loc[3, "f1"] = "abc"
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"Column 'f1' holds text \('abc' in row 4\)"):
        load_dataset(tmp_path / "t.csv")


@pytest.mark.parametrize(
    "labels",
    [
        ["001", "002", "010"],
        ["NA", "OK", "N/A"],
        ["12345678901234567890", "12345678901234567891", "12345678901234567892"],
    ],
)
def test_label_codes_are_kept_exactly_as_written(tmp_path, labels):
    frame(labels).to_csv(tmp_path / "codes.csv", index=False)
    assert sorted(data.label_names(load_dataset(tmp_path / "codes.csv"))) == sorted(labels)


def test_an_empty_label_cell_is_still_missing(tmp_path):
    (tmp_path / "m.csv").write_text("label,a\nNA,1\n,2\n")
    with pytest.raises(DataError, match=r"rows 2 have no 'label'"):
        load_dataset(tmp_path / "m.csv")


# --- unlabelled image lots ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout", ["{i}.png", "ロット1/{i}.png", "lot/sub/{i}.png"], ids=["flat", "folder", "nested"]
)
def test_unlabelled_image_lots_load_with_their_file_names(tmp_path, layout):
    image_zip(tmp_path / "lot.zip", {layout.format(i=i): png((10, 10), seed=i) for i in range(4)})
    ds = load_dataset(tmp_path / "lot.zip", image_size=(6, 5), require_labels=False)
    assert not data.is_labelled(ds) and len(ds) == 4
    assert data.input_shape(ds) == (6, 5)
    assert [f.rsplit("/", 1)[-1] for f in data.id_table(ds)["file"]] == [
        f"{i}.png" for i in range(4)
    ]
    with pytest.raises(DataError, match="no class folders|at least 2 classes"):
        data.check_trainable(load_dataset(tmp_path / "lot.zip"))


def test_a_flat_zip_mixed_with_folders_is_refused(tmp_path):
    image_zip(tmp_path / "m.zip", {"a.png": png(), "good/b.png": png()})
    with pytest.raises(DataError, match="'a.png' is not inside a folder"):
        load_dataset(tmp_path / "m.zip", require_labels=False)


# --- tables out --------------------------------------------------------------------------------


def hostile_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "file": ["=cmd|' /C calc'!A0", "+1+2", "-A1", "@SUM(A1)", "\tx", "良品/1.png"],
            "predicted": ["良品", "キズ", "NA", "001", "=1", "ok"],
            "distance": [-0.5, 0.25, np.nan, 1.0, 2.0, 3.0],
            "correct": [True, False, True, True, False, True],
        }
    )


def test_escape_formula():
    assert escape_formula("=1+2") == "'=1+2" and escape_formula("-A1") == "'-A1"
    assert escape_formula("良品") == "良品" and escape_formula("") == ""


def test_csv_has_a_bom_and_escaped_text_and_plain_numbers():
    raw = csv_bytes(hostile_table())
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(io.BytesIO(raw), encoding="utf-8-sig", keep_default_na=False)
    assert back["file"].tolist()[:4] == ["'=cmd|' /C calc'!A0", "'+1+2", "'-A1", "'@SUM(A1)"]
    assert back["file"][5] == "良品/1.png" and back["predicted"][0] == "良品"
    assert back["predicted"][3] == "001"
    assert back["distance"][0] == "-0.5"  # a number, not escaped
    assert b"\r\n" in raw


def test_xlsx_round_trip_text_is_text_not_formula(tmp_path):
    from openpyxl import load_workbook

    path = tmp_path / "p.xlsx"
    path.write_bytes(xlsx_bytes({"予測": hostile_table(), "per class": pd.DataFrame({"a": [1]})}))
    book = load_workbook(path)
    assert book.sheetnames == ["予測", "per class"]
    sheet = book["予測"]
    assert [c.value for c in sheet[1]] == ["file", "predicted", "distance", "correct"]
    cell = sheet["A2"]
    assert cell.value == "=cmd|' /C calc'!A0" and cell.data_type == "s" and cell.quotePrefix
    assert sheet["B6"].data_type == "s" and sheet["B6"].value == "=1"
    assert sheet["B2"].value == "良品" and sheet["B5"].value == "001"
    assert sheet["C2"].value == -0.5 and sheet["C2"].data_type == "n"
    assert sheet["C4"].value is None  # NaN: an empty cell
    assert sheet["D2"].value is True
    formulas = [c.coordinate for row in sheet.iter_rows() for c in row if c.data_type == "f"]
    assert formulas == []


# --- predictions carry the IDs ---------------------------------------------------------------


def test_predictions_carry_id_columns_first(tiny_run, tmp_path):
    from soartlab.workflow import load_lot, load_run, predict

    run = load_run(tiny_run.run.path)
    X, _ = data.to_arrays(tiny_run.dataset)
    table = pd.DataFrame(X[:5], columns=[f"px_{k // 39}_{k % 39}" for k in range(36 * 39)])
    table.insert(0, "品番", [f"A-{i:05d}" for i in range(5)])
    table.insert(1, "lot", "L-1")
    table.to_csv(tmp_path / "lot.csv", index=False, encoding="cp932")
    predictions = predict(run, load_lot(run, tmp_path / "lot.csv"))
    assert list(predictions.columns[:3]) == ["品番", "lot", "index"]
    assert predictions["品番"].tolist() == [f"A-{i:05d}" for i in range(5)]
    assert set(predictions["decision"]) <= {"pass", "fail", "review"}


def test_a_flat_zip_of_small_images_is_predicted_at_the_runs_size(tiny_run, tmp_path):
    from soartlab.workflow import load_lot, load_run, predict

    run = load_run(tiny_run.run.path)
    image_zip(tmp_path / "lot.zip", {f"部品{i}.png": png((8, 8), seed=i) for i in range(3)})
    lot = load_lot(run, tmp_path / "lot.zip")
    assert data.input_shape(lot) == tuple(run.input_shape)
    predictions = predict(run, lot)
    assert predictions["file"].tolist() == ["部品0.png", "部品1.png", "部品2.png"]
    assert "label" not in predictions.columns


def test_xlsx_formulas_give_the_values_excel_last_computed(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["label", "a", "b"])
    for row, label in enumerate(["良品", "キズ", "良品", "キズ"], start=2):
        sheet.append([label, row, f"=B{row}*2"])
    book.save(tmp_path / "plain.xlsx")
    # Excel stores each formula's last value beside it (<v>); openpyxl writes none
    with zipfile.ZipFile(tmp_path / "plain.xlsx") as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    for row in range(2, 6):
        xml = xml.replace(f"<f>B{row}*2</f><v />", f"<f>B{row}*2</f><v>{row * 2}</v>")
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(tmp_path / "cached.xlsx", "w") as target:
        for name, blob in parts.items():
            target.writestr(name, blob)
    X, _ = data.to_arrays(load_dataset(tmp_path / "cached.xlsx"))
    np.testing.assert_array_equal(X, [[2, 4], [3, 6], [4, 8], [5, 10]])
    with pytest.raises(DataError, match="missing, NaN or infinite"):  # never computed
        load_dataset(tmp_path / "plain.xlsx")
