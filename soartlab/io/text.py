"""Text files as Japanese Windows and Excel write them: which encoding, decoded once.

Cheap, certain checks first — a UTF-8 byte-order mark (Excel's "CSV UTF-8"), a UTF-16
one (Excel's "Unicode text"), strict UTF-8, then cp932 (Shift-JIS as Windows writes it:
Japanese Excel's plain "CSV") — and only then charset-normalizer's best guess. The
encoding used is recorded so the Data page can say how the file was read; a file that no
encoding reads as text is refused, never decoded into mojibake.
"""

from __future__ import annotations

from soartlab.errors import DataError

ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with a byte-order mark",
    "utf-16": "UTF-16",
    "cp932": "Shift-JIS (cp932)",
}
"""How an encoding is named to people; others are shown by their codec name."""

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# charset-normalizer reads everything as *something*; a guess with more "chaos" than
# this (its share of characters that do not belong together) is not text.
_MAX_CHAOS = 0.2


def encoding_name(encoding: str) -> str:
    """``"cp932"`` → ``"Shift-JIS (cp932)"``, for messages and the Data page."""
    return ENCODING_NAMES.get(encoding, encoding)


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """The text of a file's bytes and the encoding it was read with (``"utf-8"``,
    ``"utf-8-sig"``, ``"utf-16"``, ``"cp932"`` or charset-normalizer's codec name).

    A byte-order mark is not part of the text. `DataError` naming the file when the
    bytes are no text in any encoding that can be told apart.
    """
    if data.startswith(_UTF8_BOM):
        return data[len(_UTF8_BOM) :].decode("utf-8"), "utf-8-sig"
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise _not_text(
                name, "it starts with a UTF-16 byte-order mark but is not UTF-16"
            ) from None
    for encoding in ("utf-8", "cp932"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    guess = _best_guess(data)
    if guess is None:
        raise _not_text(name, "no text encoding reads it without garbling it")
    return data.decode(guess), guess


def _best_guess(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    if b"\x00" in data:  # binary, or UTF-16 without a byte-order mark: not guessed
        return None
    best = from_bytes(data).best()
    if best is None or best.chaos > _MAX_CHAOS:
        return None
    return best.encoding


def _not_text(name: str, why: str) -> DataError:
    return DataError(
        f"'{name}' cannot be read as text: {why}. Save it from Excel as 'CSV UTF-8' "
        "(or plain 'CSV'), or check that it is the file you meant."
    )
