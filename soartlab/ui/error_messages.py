"""Engine error messages in the session's language, translated at the UI edge.

The engine (no Streamlit, also used by the CLI) words its errors in English, with the
file, row, column and values in the text. Rather than thread a message id through every
``raise``, the interface keeps the English *template* of each message a user meets most
often (loading data, a refused training setting, a checkpoint or run that cannot be
used) as its msgid: ``'{name}' line {line} has {actual} fields; …``. The template is
turned into a pattern (the text literal, each ``{field}`` any text), an engine message
that matches it is shown through the template's translation with the same field values,
and any other message is shown as the engine wrote it (English). The first template that
matches wins, so a more specific one goes before a more general one. Field values are data
(file names, column names, numbers) and stay as they are, except the few that are words
(`FIELD_WORDS`).

``tests/test_i18n.py`` raises each kind of error through the engine and checks that the
message matches its template, so a reworded engine message shows up as a failing test
rather than as untranslated text.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable

from soartlab.ui.i18n import DEFAULT_LANGUAGE, N_, current_language, translated

TEMPLATES = (
    # --- reading data (soartlab.io, soartlab.data) ---
    N_(
        "'{name}' is not UTF-8 text (byte {byte} at position {position} cannot be decoded). "
        "Save it as UTF-8 (in Excel: 'CSV UTF-8')."
    ),
    N_("'{name}' is empty: no data rows. Expected a header line and data rows."),
    N_("'{name}' holds no data rows."),
    N_("'{name}' has a header but no data rows. Expected one row per sample."),
    N_("'{name}' looks separated by ';' rather than ','. Save it as comma-separated CSV."),
    N_(
        "'{name}' line {line} has {actual} fields; the header has {expected}. Every row "
        "needs one value per column."
    ),
    N_(
        "'{name}' has no feature columns besides {label}. Expected numeric feature columns "
        "(or px_<row>_<col> pixel columns, or a 'features' column of lists)."
    ),
    N_(
        "'{name}' has no {label} column; columns found: {columns}. Expected a {label} "
        "column holding each row's class."
    ),
    N_("'{name}': rows {rows} have no {label}; every row needs a class."),
    N_("'{name}': rows {rows} have an empty label; every row needs a class."),
    N_("Column {column} holds text ({value} in row {row}); feature columns must be numeric."),
    N_(
        "'{name}': rows {rows} (counted from 1) hold missing, NaN or infinite values (row "
        "{row}, column {column}: {value}). Every feature must be a finite number."
    ),
    N_("'{name}' has more than one column named {column}; column names must be unique."),
    N_("'{name}' has {rows} data rows; the limit is {limit} rows."),  # before the next
    N_("'{name}' has {rows} rows; the limit is {limit} rows."),
    N_("'{name}' has {columns} columns; the limit is {limit} columns."),
    N_("'{name}' has an unsupported file type '{suffix}'; supported formats: {formats}."),
    N_(
        "'{name}' cannot be read ({reason}). Check that it is a complete, valid {kind} file "
        "in one of the layouts the README describes."
    ),
    N_("'{name}' is not a valid Parquet file ({reason})."),
    N_(
        "'{archive}' holds no images. Expected a zip with one folder per class and the "
        "images inside, e.g. good/0001.png, good/0002.png, scratch/0003.png (images: "
        "{suffixes})."
    ),
    N_(
        "'{archive}' has no class folders ('{entry}' is not inside a folder). Expected a zip "
        "with one folder per class and the images inside, e.g. good/0001.png, "
        "good/0002.png, scratch/0003.png (images: {suffixes})."
    ),
    N_("'{member}' is not an image that can be read; expected PNG, JPEG or BMP."),
    N_("No data file at '{path}'."),
    # --- a training setting the engine refuses (soartlab.tuning, soartlab.config) ---
    N_(
        "Under scale {scale}, offset {offset}, floor {floor} and margin {margin}, {pulled} "
        "matched pairs are above the floor and {pushed} unmatched pairs between the floor "
        "and the margin: nothing would be learnt (at least {least} of each need a gradient). "
        "Use Suggest (python -m soartlab suggest), or lower the offset."
    ),
    N_(
        "Under the raw distance with margin {margin}, {pulled} matched pairs are above 0 and "
        "{pushed} unmatched pairs inside the margin: nothing would be learnt (at least "
        "{least} of either need a gradient). Raise the margin."
    ),
    N_(
        "margin ({margin}) must be above the floor ({floor}): no unmatched pair could be "
        "pushed. Raise the margin or lower the floor."
    ),
    # how a training run ended early (soartlab.training: the trainer's stop reason)
    N_("stopped by the user in epoch {epoch}, step {step}/{steps}"),
    N_("loss became NaN in epoch {epoch}, step {step}/{steps}"),
    N_(
        "not learning: in epoch {epoch} no step had a gradient (largest total gradient norm "
        "{gradient} over {steps} steps; loss {loss}), so no weight moved. The transform "
        "leaves every pair on the floor or beyond the margin: use Suggest (python -m "
        "soartlab suggest) or lower the offset."
    ),
    N_("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'."),
    # --- checkpoints, runs and scoring (soartlab.checkpoint, runs, workflow) ---
    N_("'{path}' does not exist: not a SOART Lab run folder."),
    N_("{path} is not a SOART Lab run (no {record})."),
    N_("No run '{run}' in '{home}'."),
    N_("{name} holds only weights; upload its {record} with it, or the bundle .zip."),
    N_("{name} is not a SOART Lab bundle: {missing} missing (expected {expected})."),
    N_("'{name}' is not a valid checkpoint: the file is empty."),
    N_(
        "'{name}' holds pickled Python objects ({found}), not just tensors, and was refused "
        "without running them. Export the state_dict instead: torch.save(model.state_dict(), "
        "'model.pth'), or use the model.safetensors file SOART Lab writes."
    ),
    N_(
        "Checkpoint '{name}' does not have the SOART Lab / article architecture (linear1, "
        "linear2, linear3, final): missing keys {missing}; found {found}."
    ),
    N_("The samples have {n} features but the model expects {expected} ({shape})."),
    N_("This checkpoint has no reference embeddings; upload the bundle .zip or pick a saved run."),
    N_("Labels {labels} are not classes of this model ({classes})."),
    N_(
        "The loaded data ({n} samples) is not the data run {run} was trained on ({m} "
        "samples): its held-out figures cannot be computed on it. Load that data, or score "
        "this data as a new lot on Predict."
    ),
    N_(
        "Run {run} was saved before runs recorded their held-out parts, so its held-out "
        "figures cannot be recomputed. Retrain it, or score data with Predict."
    ),
    N_("These runs held out no parts in common; compare them on Predict."),
    N_("These samples have no labels; metrics need a 'label' column."),
    N_("Training failed unexpectedly: {error}"),
    N_("Preview failed unexpectedly: {error}"),
    # --- lot checks before scoring (soartlab.lotcheck) ---
    N_(
        "{source} is on another scale than the training data: its values run from {low} to "
        "{high} (a typical part spans {spread} around {median}); the run was trained on values "
        "from {train_low} to {train_high} (a typical part spans {train_spread} around "
        "{train_median}), {ratio}× apart. Export the lot as the training data was (e.g. 0–1, "
        "not 0–255), or train on data like it."
    ),
    N_("{source} holds no finite values to score."),
    N_("{source} has {found} features; the run was trained on {expected}."),
)


def _share(text: str) -> str:
    """The loss view's share of pairs ("no", "every", "12.5 % of") as a plain share."""
    if text == "no":
        return "0 %"
    if text == "every":
        return "100 %"
    return text.removesuffix(" of")


# Fields whose values are words rather than data.
FIELD_WORDS: dict[str, Callable[[str], str]] = {"pulled": _share, "pushed": _share}
# Fields whose values are interface words with a msgid of their own (the lot check's
# `source`), shown through the catalogue.
CATALOGUE_FIELDS = {"source": (N_("The lot"),)}


def _pattern(template: str) -> re.Pattern[str]:
    """The template as a full-match pattern: literal text, each field any text (a field
    named twice must hold the same text both times)."""
    parts, seen = [], set()
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is None:
            continue
        parts.append(f"(?P={field})" if field in seen else f"(?P<{field}>.+?)")
        seen.add(field)
    return re.compile("".join(parts), re.DOTALL)


@functools.cache
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((template, _pattern(template)) for template in TEMPLATES)


def match(message: str) -> tuple[str, dict[str, str]] | None:
    """``(template, field values)`` of the first template ``message`` matches, else None."""
    for template, pattern in _patterns():
        found = pattern.fullmatch(message.strip())
        if found:
            return template, found.groupdict()
    return None


def translate_message(message: str, language: str) -> str:
    """``message`` (an engine error's English) in ``language``: through its template's
    translation when it matches one, else as it is."""
    if language == DEFAULT_LANGUAGE:
        return message
    found = match(message)
    if found is None:
        return message
    template, fields = found
    words = {name: FIELD_WORDS.get(name, str)(value) for name, value in fields.items()}
    for name, known in CATALOGUE_FIELDS.items():
        if words.get(name) in known:
            words[name] = translated(words[name], language)
    try:
        return translated(template, language).format(**words)
    except (KeyError, IndexError, ValueError):  # a translation with other fields
        return message


def engine_message(message: str) -> str:
    """An engine error message in the session's language."""
    return translate_message(message, current_language())
