"""The Predict page's loading: a saved run or an uploaded checkpoint, and new samples."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from soartlab.errors import CheckpointError
from soartlab.ui import data_io, state
from soartlab.ui.explore import table_metrics
from soartlab.ui.i18n import N_, _

MODEL_TYPES = ("pth", "pt", "json", "zip", "safetensors")
UPLOADED_MODEL = "soart_uploaded_model"  # (signature, LoadedRun)
SAMPLES = "soart_predict_samples"  # (signature, dataset, name)


def load_saved_run(run_dir: Path) -> Any:
    """A saved run, loaded once per session (the current run reuses its loaded copy)."""
    if state.current_run_dir() == Path(run_dir):
        return state.current_run()
    from soartlab.workflow import load_run

    return state.cached("predict_run", (str(run_dir),), lambda: load_run(run_dir))


def load_model_files(files: list[tuple[str, bytes]]) -> Any:
    """A ``LoadedRun`` from uploaded files: a bundle .zip, a .safetensors file, or a .pth
    (or .pt) with its run.json. ``CheckpointError`` names what is missing."""
    from soartlab.workflow import load_uploaded

    by_suffix: dict[str, tuple[str, bytes]] = {}
    for name, data in files:
        suffix = Path(name).suffix.lower().lstrip(".")
        if suffix not in MODEL_TYPES:
            raise CheckpointError(
                _(
                    "'{name}' is not a model file; expected .pth/.pt with run.json, .zip or "
                    ".safetensors."
                ).format(name=name)
            )
        by_suffix[suffix] = (name, data)
    model = next(
        (by_suffix[s] for s in ("zip", "safetensors", "pth", "pt") if s in by_suffix), None
    )
    if model is None:
        raise CheckpointError(
            _(
                "Upload the model too: a .pth with its run.json, the bundle .zip, or a "
                ".safetensors file."
            )
        )
    suffix = Path(model[0]).suffix.lower()
    record = None
    if suffix in (".pth", ".pt"):
        if "json" not in by_suffix:
            raise CheckpointError(
                _(
                    "'{name}' holds only weights; upload its run.json with it (or the bundle .zip)."
                ).format(name=model[0])
            )
        record = by_suffix["json"][1]
    with tempfile.TemporaryDirectory(prefix="soartlab-model-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(model[1])
        return load_uploaded(path, record)


def uploaded_model(files: list[Any]) -> Any:
    """The run from ``st.file_uploader`` files, loaded once per set of files."""
    signature = tuple(sorted(f.file_id for f in files))
    cached = st.session_state.get(UPLOADED_MODEL)
    if cached is not None and cached[0] == signature:
        return cached[1]
    run = load_model_files([(f.name, f.getvalue()) for f in files])
    st.session_state[UPLOADED_MODEL] = (signature, run)
    return run


def uploaded_samples(file: Any, run: Any = None) -> Any:
    """New samples from an uploaded file (a table, or a zip of images with or without
    class folders), loaded once per file and run: images at the run's image size."""
    signature = (file.file_id, None if run is None else run_key(run))
    cached = st.session_state.get(SAMPLES)
    if cached is not None and cached[0] == signature:
        return cached[1]
    # a new lot may come without labels: predictions then, no metrics
    dataset = data_io.load_from_bytes(file.name, file.getvalue(), require_labels=False, run=run)
    st.session_state[SAMPLES] = (signature, dataset)
    return dataset


MAX_FLAGGED_THUMBNAILS = 40


def flagged_thumbnails(dataset: Any, table: Any) -> tuple[Any, list[str], list[str]] | None:
    """The parts judged ``fail`` or ``review`` as images ``(n, H, W)`` (the first
    ``MAX_FLAGGED_THUMBNAILS``), their titles (decision · predicted class) and captions
    (file names, or row numbers); None for feature data or when nothing is flagged."""

    from soartlab.data import input_shape, to_arrays
    from soartlab.workflow import flagged

    shape = tuple(input_shape(dataset))
    if len(shape) != 2:
        return None
    rows = flagged(table, MAX_FLAGGED_THUMBNAILS)
    if not len(rows):
        return None
    X, _y = to_arrays(dataset.select(rows.tolist()))
    names = part_names(dataset, rows)
    titles = [
        f"{decision_words(table['decision'].iat[r])} · {outcome_words(table.iloc[r])}" for r in rows
    ]
    captions = [name or f"#{r}" for name, r in zip(names, rows, strict=True)]
    return X.reshape((len(rows), *shape)), titles, captions


def held_out_samples(run: Any, dataset: Any) -> Any:
    """The parts of ``dataset`` the run held out from training (``DataError`` when it is
    not the run's data)."""
    from soartlab.workflow import held_out_split

    return held_out_split(run, dataset)


def run_key(run: Any) -> tuple[str, str, str]:
    """What identifies a run for caching: its folder, id and creation time (an uploaded
    bundle of a saved run is the same run)."""
    return str(run.run_dir), run.record.run_id, run.record.created


def predictions(run: Any, dataset: Any, key: tuple) -> tuple[Any, dict | None]:
    """The lot's `workflow.LotPrediction` (table, lot check, decision figures) and, when
    the samples carry labels, the nearest-class metrics. A lot on another scale raises
    the engine's `DataError` (shown by the page's guard)."""
    from soartlab.workflow import predict_lot

    def compute() -> tuple[Any, dict | None]:
        lot = predict_lot(run, dataset)
        table = lot.table
        # the metrics from the table: evaluate_run would embed and classify again
        metrics = table_metrics(run, table)[2] if "label" in table.columns else None
        return lot, metrics

    return state.cached("predict_table", key, compute)


# The prediction table's columns (workflow.predict) and decisions, as shown on the page;
# the downloaded CSV keeps the engine's names. Other columns (IDs, file names) as they are.
COLUMN_TITLES = {
    "index": N_("index"),
    "predicted": N_("predicted"),
    "decision": N_("decision"),
    "defect_type": N_("defect_type"),
    "pass_fail": N_("pass_fail"),
    "distance": N_("distance"),
    "nearest_index": N_("nearest_index"),
    "nearest_class": N_("nearest_class"),
    "good_distance": N_("good_distance"),
    "defect_distance": N_("defect_distance"),
    "reason": N_("reason"),
    "label": N_("label"),
    "correct": N_("correct"),
}
DECISIONS = {"pass": N_("pass"), "fail": N_("fail"), "review": N_("review")}


def _reasons() -> dict[str, str]:
    """Why a part is sent to review or failed as unknown (the engine's words) → msgid."""
    from soartlab import decision, lotcheck, workflow

    return {
        lotcheck.NOT_FINITE_VALUE: N_("a value is not finite"),
        lotcheck.OUT_OF_RANGE: N_("values far outside the training range"),
        decision.IN_REVIEW_BAND: N_("score in the review band"),
        decision.FAR_FROM_REFERENCES: N_("farther from every reference than any calibration part"),
        workflow.NOT_FINITE_INPUT: N_("not finite after normalisation"),
        workflow.NOT_FINITE_EMBEDDING: N_("embedding not finite"),
        workflow.NOT_FINITE_DISTANCE: N_("distance to the nearest reference not finite"),
    }


def part_names(dataset: Any, rows: Any) -> list[str | None]:
    """What a person calls the parts at ``rows``: the image's file name, else the first ID
    column's value (a part number); None when the lot has neither."""
    from soartlab.data import id_table

    ids = id_table(dataset)
    if "file" in ids:
        return [str(ids["file"][r]).rsplit("/", 1)[-1] for r in rows]
    if ids:
        first = next(iter(ids.values()))
        return [str(first[r]) for r in rows]
    return [None for _ in rows]


def decision_words(decision: str) -> str:
    """``pass`` / ``review`` / ``fail`` in the session's language."""
    return _(DECISIONS[decision]) if decision in DECISIONS else decision


def reason_words(reason: str) -> str:
    """Why a part went to review (the engine's words) in the session's language."""
    words = _reasons()
    return _(words[reason]) if reason in words else reason


def outcome_words(row: Any) -> str:
    """A flagged part's defect type, else its nearest class, else why it went to review."""
    defect = row.get("defect_type") or ""
    if defect:
        return _("unknown") if defect == "unknown" else defect
    return row.get("predicted") or reason_words(row.get("reason") or "")


def shown_table(table: Any) -> Any:
    """The prediction table with its headers, decisions and reasons in the session's
    language (a copy; ``table`` is what the CSV download writes)."""
    shown = table.copy()
    # each distinct value translated once, then mapped (lots have thousands of rows)
    for column in ("decision", "pass_fail"):
        if column in shown:
            shown[column] = shown[column].map(
                {v: decision_words(v) for v in shown[column].unique()}
            )
    if "defect_type" in shown:
        shown["defect_type"] = shown["defect_type"].map(
            lambda v: _("unknown") if v == "unknown" else v
        )
    if "reason" in shown:
        shown["reason"] = shown["reason"].map(
            {v: reason_words(v) for v in shown["reason"].unique()}
        )
    return shown.rename(columns={c: _(t) for c, t in COLUMN_TITLES.items() if c in shown})
