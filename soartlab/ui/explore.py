"""What the Explore and Runs pages show about a trained run on its held-out data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from soartlab.ui import state
from soartlab.ui.i18n import N_, _

# The per-class table's columns (classification_metrics' per_class keys), as shown.
PER_CLASS_COLUMNS = {
    "label": N_("class"),
    "precision": N_("precision"),
    "recall": N_("recall"),
    "f1": N_("F1"),
    "support": N_("samples"),
    "escape_rate": N_("escape"),
    "overkill_rate": N_("overkill"),
}


@dataclass(frozen=True)
class HeldOutView:
    """A run's predictions on the held-out split of the session's data."""

    label_names: list[str]
    good_index: int
    y_true: np.ndarray  # (n,) class ids in the run's label order
    y_pred: np.ndarray  # (n,)
    embeddings: np.ndarray  # (n, e)
    images: np.ndarray | None  # (n, H, W) raw samples when they are images
    metrics: dict  # accuracy, escape_rate, overkill_rate, confusion, per_class
    files: list[str] | None = None  # (n,) image file names when the data has them


def held_out_view(
    run: Any, data: state.LoadedData, split_runs: tuple[Any, ...] = ()
) -> HeldOutView:
    """Embeddings, predictions and metrics of ``run`` on the parts of the session's data
    that it held out from training (see ``workflow.held_out_split``). ``split_runs``: the
    runs whose held-out parts count (default ``(run,)``); with two runs both are scored on
    the parts held out by both. Cached per session; ``DataError`` when the loaded data is
    not the data the runs were trained on."""
    from soartlab.data import id_table, to_arrays
    from soartlab.workflow import embed_dataset, held_out_split, predict

    split_runs = split_runs or (run,)
    key = (data.version, str(run.run_dir), tuple(str(r.run_dir) for r in split_runs))

    def compute() -> HeldOutView:
        test = held_out_split(list(split_runs), data.dataset)
        embeddings = embed_dataset(run, test)
        y_true, y_pred, metrics = table_metrics(run, predict(run, test, embeddings=embeddings))
        X, _ = to_arrays(test)
        shape = tuple(run.input_shape)
        images = X.reshape((len(X),) + shape) if len(shape) == 2 else None
        return HeldOutView(
            run.label_names,
            run.good_index,
            y_true,
            y_pred,
            embeddings,
            images,
            metrics,
            id_table(test).get("file"),
        )

    # One slot per role (the run alone; each side of a comparison), so drawing one view
    # does not evict another.
    role = [str(r.run_dir) for r in split_runs].index(str(run.run_dir))
    return state.cached(f"held_out_{len(split_runs)}_{role}", key, compute)


def table_metrics(run: Any, table: Any) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(y_true, y_pred, metrics)`` of a labelled ``workflow.predict`` table: class ids in
    the run's order and what ``workflow.evaluate_run`` gives, without classifying again."""
    from soartlab.evaluation import classification_metrics

    lookup = {name: i for i, name in enumerate(run.label_names)}
    y_true = table["label"].map(lookup).to_numpy(dtype=np.int64)
    # a part that could not be scored (decision "review") has no class: -1, never good
    y_pred = table["predicted"].map(lookup).fillna(-1).to_numpy(dtype=np.int64)
    return y_true, y_pred, classification_metrics(y_true, y_pred, run.label_names, run.good_index)


def load_other_run(run_dir: Any) -> Any:
    """A second run to compare with, loaded once per session."""
    from soartlab.workflow import load_run

    return state.cached("explore_other_run", (str(run_dir),), lambda: load_run(run_dir))


def projected(view: HeldOutView, components: int) -> np.ndarray:
    """PCA of the held-out embeddings to 2 or 3 components, cached per session."""
    from soartlab.evaluation import pca

    # Keyed on the embeddings' bytes: the projection depends on nothing else, and an object's
    # id() can be reused by a later view once the old one is garbage-collected.
    embeddings = np.ascontiguousarray(view.embeddings)
    digest = hashlib.blake2b(embeddings.data, digest_size=16).hexdigest()
    key = (embeddings.shape, str(embeddings.dtype), digest, components)
    return state.cached("explore_pca", key, lambda: pca(embeddings, n_components=components))


def per_class_table(metrics: dict) -> Any:
    import pandas as pd

    table = pd.DataFrame(metrics.get("per_class", []))
    rates = [c for c in ("precision", "recall", "f1", "escape_rate", "overkill_rate") if c in table]
    shown = {c: _(PER_CLASS_COLUMNS[c]) for c in table.columns if c in PER_CLASS_COLUMNS}
    table = table.rename(columns=shown)
    return table.style.format({shown.get(c, c): "{:.1%}" for c in rates}, na_rep="–")


def confusion_cells(confusion: list[list[int]]) -> list[tuple[int, int]]:
    """The non-empty cells ``(true, predicted)`` of a confusion matrix, mistakes first
    (they are what one opens the view for), each group by count, largest first."""
    cells = [(t, p) for t, row in enumerate(confusion) for p, count in enumerate(row) if count > 0]
    cells.sort(key=lambda cell: (cell[0] == cell[1], -confusion[cell[0]][cell[1]]))
    return cells


def cell_samples(view: HeldOutView, true_index: int, pred_index: int) -> np.ndarray:
    """Indices (into the held-out split) of samples in confusion cell (true, pred)."""
    return np.flatnonzero((view.y_true == true_index) & (view.y_pred == pred_index))
