"""The Data page with files as Japanese Windows and Excel write them (AppTest; the
upload goes through ``state.PENDING_UPLOAD``, as AppTest cannot drive a file uploader)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from soartlab.ui import data_io, state

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, name: str, data: bytes, **options) -> AppTest:
    at.session_state[state.PENDING_UPLOAD] = (name, data, "label", "", options)
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def page_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [w.value for w in at.warning]
    return "\n".join(str(p) for p in parts)


def png(size, seed) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


class Cp932Entry(zipfile.ZipInfo):
    def __init__(self, name: str) -> None:
        super().__init__(name.encode("cp932").decode("cp437"))

    def _encodeFilenameFlags(self):
        return self.filename.encode("cp437"), self.flag_bits & ~0x800


def test_cp932_csv_with_an_id_column(app):
    table = pd.DataFrame(
        {"label": ["キズ", "良品"] * 5, "品番": [f"A-{i:05d}" for i in range(10)], "f0": range(10)}
    )
    upload(app, "検査.csv", table.to_csv(index=False).encode("cp932"))
    text = page_text(app)
    assert "Read as Shift-JIS (cp932)." in text
    assert "良品 (5), キズ (5)" in text  # the classes found, the good class first
    assert "品番" in text and app.session_state[state.DATASET].good_class == "良品"
    assert "**ID columns** · 品番 (kept with each part, never features)" in text


def test_zip_with_cp932_names_shows_every_class_with_file_names(app):
    buffer = io.BytesIO()
    classes = ["良品", "キズ", "打痕", "異物", "汚れ", "欠け", "バリ", "変形", "色むら", "割れ"]
    with zipfile.ZipFile(buffer, "w") as zf:
        for k, name in enumerate(classes):
            for i in range(9):
                zf.writestr(Cp932Entry(f"{name}/{name}{i}.png"), png((8, 8), 10 * k + i))
    upload(app, "送る.zip", buffer.getvalue())
    data = app.session_state[state.DATASET]
    assert data.good_class == "良品"
    text = page_text(app)
    assert "良品 (9), キズ (9)" in text
    assert "Image sizes found: 8×8: 90 images." in text
    grid = json.loads(app.get("plotly_chart")[1].proto.spec)
    titles = [a["text"] for a in grid["layout"]["annotations"] if a.get("name") != "caption"]
    captions = [a["text"] for a in grid["layout"]["annotations"] if a.get("name") == "caption"]
    assert set(classes) <= set(titles)  # every class has pictures (10 classes × 6)
    assert len(grid["data"]) == 60 and "良品0.png" in captions


def test_xlsx_sheet_option_is_used(app, tmp_path):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"label": ["a", "b"] * 3, "x": range(6)}).to_excel(
            writer, sheet_name="一月", index=False
        )
        pd.DataFrame({"label": ["良品", "NG"] * 4, "x": range(8)}).to_excel(
            writer, sheet_name="二月", index=False
        )
    upload(app, "book.xlsx", path.read_bytes(), sheet="二月")
    assert len(app.session_state[state.DATASET].dataset) == 8
    assert "Sheet '二月'." in page_text(app)


def test_enlarged_images_are_noted(app):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for k, name in enumerate(["good", "dent"]):
            for i in range(3):
                zf.writestr(f"{name}/{i}.png", png((8, 8), 3 * k + i))
    upload(app, "s.zip", buffer.getvalue(), image_size=(36, 39))
    assert "6 of 6 images were resized to 36×39" in page_text(app)


def test_uploaders_take_excel():
    assert "xlsx" in data_io.UPLOAD_TYPES
