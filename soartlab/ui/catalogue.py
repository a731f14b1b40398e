"""Keeping the interface catalogue: every msgid of the code, and the ``.po`` files updated
to them (``make messages`` runs ``python -m soartlab.ui.catalogue``).

Messages come from three places:

- ``_("…")`` and ``N_("…")`` in ``app.py``, ``pages/`` and ``soartlab/`` (Babel's Python
  extractor);
- ``translate("…")`` in the engine's figure builders (``soartlab.plots``): they take the
  UI's ``_`` as their ``translate`` argument and stay English by default;
- the training settings declared in ``soartlab.config.TRAIN_SETTINGS``: the Train page
  shows their label, help and choices through ``_()``.

New messages enter the ``.po`` untranslated (no fuzzy guesses), and
``tests/test_i18n.py`` fails until each has a Japanese translation.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po, write_po

from soartlab.ui.i18n import DOMAIN, LOCALE_DIR, catalogue_path

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "N_": None, "translate": None}
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
TRANSLATED = ("ja",)


def declared_messages() -> Iterator[tuple[str, str]]:
    """``(message, where)`` of the texts the engine declares for the interface to show."""
    from soartlab.config import TRAIN_SETTINGS

    for setting in TRAIN_SETTINGS:
        if not setting.label:  # not on the Train page
            continue
        where = f"soartlab.config.TRAIN_SETTINGS[{setting.name!r}]"
        yield setting.label, where
        if setting.help:
            yield setting.help, where
        for choice in setting.choices or ():
            yield str(choice), where


def extract(root: Path = ROOT) -> Catalog:
    """Every msgid of the interface, with where it is used."""
    catalog = Catalog(domain=DOMAIN, project="SOART Lab", charset="utf-8")

    def add(message: object, location: tuple[str, int]) -> None:
        if isinstance(message, str) and message:  # plural forms are not used
            catalog.add(message, locations=[location])

    add_file = root / "app.py"
    for line, message, _comments, _context in extract_from_file(
        "python", add_file, keywords=KEYWORDS
    ):
        add(message, ("app.py", line))
    for folder in ("pages", "soartlab"):
        for name, line, message, _comments, _context in extract_from_dir(
            root / folder, keywords=KEYWORDS
        ):
            add(message, (f"{folder}/{name}", line))
    for message, where in declared_messages():
        add(message, (where, 0))
    return catalog


def read_catalogue(language: str) -> Catalog:
    with catalogue_path(language).open("rb") as po:
        return read_po(po, locale=language, domain=DOMAIN)


def missing_translations(language: str, template: Catalog | None = None) -> list[str]:
    """The msgids of the code that ``language``'s catalogue does not translate (absent,
    empty or fuzzy)."""
    template = template or extract()
    catalogue = read_catalogue(language)
    missing = []
    for message in template:
        if not message.id:
            continue
        entry = catalogue.get(message.id)
        if entry is None or not entry.string or entry.fuzzy:
            missing.append(message.id)
    return missing


def _write(catalog: Catalog, path: Path, **options: object) -> None:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, include_lineno=False, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def update(languages: tuple[str, ...] = TRANSLATED) -> dict[str, int]:
    """Write the template and bring each language's ``.po`` up to it (messages gone from
    the code are dropped, new ones added untranslated). Returns the untranslated count
    per language."""
    template = extract()
    _write(template, TEMPLATE, omit_header=False)
    counts = {}
    for language in languages:
        path = catalogue_path(language)
        if path.exists():
            catalogue = read_catalogue(language)
        else:
            catalogue = Catalog(locale=language, domain=DOMAIN, project="SOART Lab")
        catalogue.update(template, no_fuzzy_matching=True)
        _write(catalogue, path, ignore_obsolete=True)
        counts[language] = len(missing_translations(language, template))
    return counts


if __name__ == "__main__":
    for code, count in update().items():
        print(f"{catalogue_path(code).relative_to(ROOT)}: {count} messages to translate")
