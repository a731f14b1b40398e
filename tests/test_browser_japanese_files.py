"""Japanese files uploaded in a real browser: a zip made by Windows' "Send to →
Compressed folder" (cp932 names, no UTF-8 flag) and a Shift-JIS CSV with a part-number
column, whose ID-column choice is changed in the page."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from browser_helpers import browser, no_exception, server, settle
from PIL import Image

pytestmark = pytest.mark.browser
__all__ = ["browser", "server"]  # fixtures, used by name


class Cp932Entry(zipfile.ZipInfo):
    def __init__(self, name: str) -> None:
        super().__init__(name.encode("cp932").decode("cp437"))

    def _encodeFilenameFlags(self):
        return self.filename.encode("cp437"), self.flag_bits & ~0x800


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def upload(page, path, wait: str) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
    page.get_by_text(wait).first.wait_for(timeout=60_000)
    settle(page)


def test_cp932_zip_and_csv_with_an_id_column(server, browser, tmp_path):
    url, _ = server
    lot = tmp_path / "送る.zip"
    with zipfile.ZipFile(lot, "w") as zf:
        for k, name in enumerate(["キズ", "良品", "ソリ"]):
            for i in range(3):
                zf.writestr(Cp932Entry(f"検査/{name}/{i}.png"), png(3 * k + i))
    table = pd.DataFrame(
        {"label": ["良品", "キズ"] * 4, "品番": [f"A-{i:05d}" for i in range(8)], "f0": range(8)}
    )
    csv = tmp_path / "検査.csv"
    table.to_csv(csv, index=False, encoding="cp932")

    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{url}/data")
        page.get_by_text("demo set:").first.wait_for(timeout=120_000)
        upload(page, lot, "Loaded '送る.zip'")
        text = main_text(page)
        assert "Classes found · 良品 (3), キズ (3), ソリ (3)" in text, text
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        assert "good class '良品'" in sidebar, sidebar  # not the first folder, キズ
        no_exception(page, "data")

        upload(page, csv, "Loaded '検査.csv'")
        text = main_text(page)
        assert "Read as Shift-JIS (cp932)." in text and "ID columns · 品番" in text, text
        ids = page.locator('[data-testid="stMultiSelect"]').filter(has_text="ID columns")
        assert "品番" in ids.inner_text()
        ids.get_by_role("button", name="Remove 品番").click()  # the user's choice: no IDs
        page.get_by_text("holds text ('A-00000' in row 1)").first.wait_for(timeout=60_000)
        no_exception(page, "data")
    finally:
        context.close()
