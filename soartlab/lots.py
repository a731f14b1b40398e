"""Predicting and evaluating lots that stay on disk: rows read a chunk at a time, each
chunk scored by `soartlab.workflow.predict` itself (so the decisions and the columns are
exactly those of a lot predicted in memory), predictions written out as they come.

Memory holds one chunk of samples, its predictions, and the run's references.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from soartlab import data as D
from soartlab.errors import DataError, SoartLabError
from soartlab.evaluation import classification_metrics
from soartlab.lotcheck import LotCheck, combine
from soartlab.rows import ArrowRows

if TYPE_CHECKING:
    from soartlab.workflow import LotPrediction

PREDICT_CHUNK = 8192  # rows scored at a time
OUTPUT_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class StreamedLot:
    """`predict_to_file`'s answer: the count of each decision, and the lot check of the
    whole lot (`lotcheck.combine` of its chunks': the drift report of every part)."""

    counts: dict[str, int]
    check: LotCheck


def predicted_chunks(
    run,
    rows: ArrowRows,
    chunk_rows: int = PREDICT_CHUNK,
    progress: Callable[[str], None] | None = None,
    *,
    target_escape: float | None = None,
) -> Iterator[LotPrediction]:
    """`workflow.predict_lot` of ``rows``, a chunk at a time: its tables' ``index``
    counts from the first row of the lot, with a ``file`` column after it when the lot
    is a folder of images."""
    from soartlab.workflow import predict_lot

    expected = int(np.prod(run.input_shape))
    if rows.shape[1] != expected:
        raise DataError(
            f"The samples of '{rows.source}' have {rows.shape[1]} values but the model "
            f"expects {expected} ({'×'.join(str(s) for s in run.input_shape)})."
        )
    started = last = time.monotonic()
    for start in range(0, len(rows), chunk_rows):
        stop = min(start + chunk_rows, len(rows))
        chunk = D.from_arrays(
            rows[start:stop],
            rows.labels[start:stop],
            rows.label_names,
            input_shape=run.input_shape,
        )
        lot = predict_lot(run, chunk, labelled=rows.is_labelled, target_escape=target_escape)
        table = lot.table
        table["index"] = table["index"].to_numpy() + start
        if rows.names is not None:
            table.insert(1, "file", rows.names[start:stop])
        now = time.monotonic()
        if progress is not None and (now - last > 2.0 or stop == len(rows)):
            last = now
            rate = stop / max(now - started, 1e-9)
            progress(f"predicted {stop:,}/{len(rows):,} parts ({rate:,.0f} per second)")
        yield lot


def predict_to_file(
    run,
    rows: ArrowRows,
    out: str | Path,
    *,
    chunk_rows: int = PREDICT_CHUNK,
    progress: Callable[[str], None] | None = None,
    target_escape: float | None = None,
) -> StreamedLot:
    """Write the predictions of ``rows`` to ``out`` (``.csv`` or ``.parquet``), chunk by
    chunk, into a temporary file renamed at the end; returns the count of each decision
    and the whole lot's check."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise SoartLabError(f"--out must end in .csv or .parquet; got {out.name!r}.")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    counts: dict[str, int] = {}
    checks: list[LotCheck] = []
    writer = None
    try:
        with open(tmp, "wb") as handle:
            for k, lot in enumerate(
                predicted_chunks(run, rows, chunk_rows, progress, target_escape=target_escape)
            ):
                table = lot.table
                checks.append(lot.check)
                for decision, n in table["decision"].value_counts().items():
                    counts[decision] = counts.get(decision, 0) + int(n)
                if suffix == ".csv":
                    handle.write(table.to_csv(index=False, header=k == 0).encode("utf-8"))
                    continue
                arrow = pa.Table.from_pandas(table, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(handle, arrow.schema)
                writer.write_table(arrow.cast(writer.schema))
            if writer is not None:
                writer.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return StreamedLot(counts, whole_lot_check(run, rows, checks))


def whole_lot_check(run, rows: ArrowRows, checks: list[LotCheck]) -> LotCheck:
    """The check of the whole lot ``rows`` from its chunks' ``checks``."""
    stats = None if run.calibration is None else run.calibration.stats
    return combine(checks, stats, input_shape=run.input_shape)


def evaluate_rows(run, rows: ArrowRows, progress: Callable[[str], None] | None = None) -> dict:
    """`workflow.evaluate_run` of a labelled lot read a chunk at a time: the same rule (a
    part that cannot be scored counts as judged defective), the same metrics, and under
    `decision` the pass/review/fail figures of the run's operating point. A class the run
    has never seen counts as a defect, never classified correctly."""
    from soartlab import decision as rule
    from soartlab.workflow import lot_class_names

    if not rows.is_labelled:
        raise DataError("These samples have no labels; metrics need a 'label' column.")
    all_names = lot_class_names(run, rows.label_names)
    position = {n: k for k, n in enumerate(all_names)}
    truth, predicted, decisions = [], [], []
    for lot in predicted_chunks(run, rows, progress=progress):
        table = lot.table
        truth.append(np.array([position[n] for n in table["label"]], dtype=np.int64))
        predicted.append(
            np.array([position[n] if n else -1 for n in table["predicted"]], dtype=np.int64)
        )
        decisions.append(table["decision"].to_numpy())
    truth_ids = np.concatenate(truth)
    metrics = classification_metrics(
        truth_ids, np.concatenate(predicted), all_names, run.good_index
    )
    point = run.operating_point(None)
    if point is not None:
        figures = rule.figures(np.concatenate(decisions), truth_ids, all_names, run.good_index)
        metrics["decision"] = figures.to_dict()
        metrics["decision"]["operating_point"] = point.to_dict()
    return metrics
