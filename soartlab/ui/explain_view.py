"""Why a part was judged as it was (Explore's confusion cells, Predict's failed and
reviewed parts), and the RT baseline beside a trained run on Explore.

The heatmaps need the reference parts' pixels, which a run folder does not keep: they
come from the session's data when it is the data the run was trained on
(`explain.reference_samples`). Otherwise the nearest references are given by class,
training row and distance only, and the page says why there is no heatmap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from soartlab.ui import state
from soartlab.ui.i18n import N_, _

MAX_EXPLAINED = 24  # parts shown with their heatmaps at once; the rest are counted


@dataclass(frozen=True)
class Explainer:
    """What explaining parts of one run needs, computed once per session."""

    ref_x: np.ndarray | None  # (N_ref, d) raw reference parts, when the run's data is loaded
    ref_rows: np.ndarray | None  # (N_ref,) the data rows behind the references
    scale: Any  # explain.HeatmapScale, or None without heatmaps
    note: str  # why there are no heatmaps ("" when there are), untranslated (N_)


def _run_key(run: Any) -> tuple:
    return str(run.run_dir), run.record.run_id, run.record.created


def explainer(run: Any, data: state.LoadedData | None) -> Explainer:
    """The reference pixels and heatmap scale of ``run`` with the session's ``data``."""
    from soartlab.explain import heatmap_scale, reference_rows, reference_samples

    def compute() -> Explainer:
        rows = reference_rows(run.record)
        if run.references is None:
            return Explainer(None, rows, None, "")
        ref_x = reference_samples(run.record, data.dataset) if data is not None else None
        if len(run.input_shape) != 2:
            return Explainer(ref_x, rows, None, N_("Heatmaps are drawn for image data only."))
        if ref_x is None:
            return Explainer(
                None,
                rows,
                None,
                N_(
                    "No heatmaps: the run keeps its reference parts as embeddings, not "
                    "pixels. Load the data this run was trained on (Data page) to see "
                    "the reference images and heatmaps."
                ),
            )
        ref_emb, ref_labels = run.references
        if np.count_nonzero(ref_labels == run.good_index) < 2:
            return Explainer(
                ref_x, rows, None, N_("No heatmaps: the run has fewer than 2 good references.")
            )
        scale = heatmap_scale(run.model, run.distance, ref_x, ref_emb, ref_labels, run.good_index)
        return Explainer(ref_x, rows, scale, "")

    version = None if data is None else data.version
    return state.cached("explain_references", (*_run_key(run), version), compute)


def _describe(run: Any, explainer: Explainer, nearest: Any, row: int) -> str:
    """One line: the nearest good and nearest defective reference of part ``row``."""
    names = run.label_names

    def where(index: int) -> str:
        if explainer.ref_rows is None:
            return _("reference {i}").format(i=int(index))
        return _("training row {r}").format(r=int(explainer.ref_rows[index]))

    parts = []
    if nearest.good[row] >= 0:
        parts.append(
            _("nearest good: {where}, distance {d:.4g}").format(
                where=where(nearest.good[row]), d=nearest.good_distance[row]
            )
        )
    if nearest.defect[row] >= 0:
        parts.append(
            _("nearest defect: {cls}, {where}, distance {d:.4g}").format(
                cls=names[nearest.defect_class[row]],
                where=where(nearest.defect[row]),
                d=nearest.defect_distance[row],
            )
        )
    return " · ".join(parts) or _("no reference found (the part cannot be scored)")


def show_parts(
    run: Any,
    explainer: Explainer,
    parts: np.ndarray,
    part_emb: np.ndarray | None,
    titles: list[str],
    ids: list[str],
    *,
    key: str,
    download: bool = True,
) -> None:
    """The first `MAX_EXPLAINED` of ``parts`` (N, d) raw (embeddings (N, e), or None to
    embed them here): nearest good and defective references with distances, and for
    images the heatmap PNG (with a download button when ``download``). ``titles`` (N,)
    head each part; ``ids`` (N,) name its PNG file (plain ASCII, unique)."""
    from soartlab.evaluation import embed
    from soartlab.explain import explain_parts
    from soartlab.plots.heatmaps import explanation_png

    if run.references is None:
        st.info(_("This checkpoint has no references: upload the bundle .zip to see them."))
        return
    total = len(parts)
    parts = np.asarray(parts[:MAX_EXPLAINED], dtype=np.float32)
    if part_emb is None:
        with np.errstate(over="ignore", invalid="ignore"):
            part_emb = embed(run.model, np.nan_to_num(parts, nan=0.0, posinf=0.0, neginf=0.0))
    part_emb = np.asarray(part_emb[:MAX_EXPLAINED])
    ref_x = explainer.ref_x if explainer.scale is not None else None
    explanation = explain_parts(
        run.model, run.distance, run.references, run.good_index, parts, part_emb, ref_x
    )
    if total > MAX_EXPLAINED:
        st.caption(_("The first {n} of {total} parts.").format(n=MAX_EXPLAINED, total=total))
    if explainer.note:
        st.caption(_(explainer.note))
    scale = explainer.scale
    if scale is not None:
        st.caption(
            _(
                "Each part beside its nearest good and nearest defective reference (by the "
                "run's distance) and the good reference closest in pixels; the residual "
                "y − β·x against that one (red: brighter, blue: darker), and "
                "|∂distance/∂pixel| to the nearest good reference. Colours fixed from {n} good training parts "
                "({p:g}th percentile): residual ±{r:.3g}, gradient 0–{g:.3g}; not rescaled "
                "per part, so a good part stays pale."
            ).format(n=scale.n_parts, p=scale.percentile, r=scale.residual, g=scale.gradient)
        )
    shape = tuple(run.input_shape)
    has_heatmap = explanation.has_heatmap

    def image(index: int) -> np.ndarray | None:
        return None if index < 0 else explainer.ref_x[index].reshape(shape)

    for row, title in enumerate(titles[: len(parts)]):
        nearest = explanation.nearest
        st.markdown(f"**{title}** · {_describe(run, explainer, nearest, row)}")
        if not has_heatmap[row]:
            continue
        png = explanation_png(
            parts[row].reshape(shape),
            explanation.residual[row].reshape(shape),
            explanation.gradient[row].reshape(shape),
            scale.residual,
            scale.gradient,
            references=[
                (
                    _("nearest good d={d}").format(d=f"{nearest.good_distance[row]:.3g}"),
                    image(nearest.good[row]),
                ),
                (
                    _("nearest defect d={d}").format(d=f"{nearest.defect_distance[row]:.3g}"),
                    image(nearest.defect[row]),
                ),
                (_("closest good in pixels"), image(explanation.unit[row])),
            ],
            translate=_,
        )
        st.image(png)
        if download:
            st.download_button(
                _("Download PNG"),
                data=png,
                file_name=f"soartlab-heatmap-{ids[row]}.png",
                mime="image/png",
                on_click="ignore",
                key=f"{key}_png_{ids[row]}",
            )


def held_out_parts(run: Any, data: state.LoadedData) -> np.ndarray:
    """The raw held-out parts (n, d) of the session's data for ``run`` (the rows of
    ``explore.held_out_view``), cached."""
    from soartlab.data import to_arrays
    from soartlab.workflow import held_out_split

    def compute() -> np.ndarray:
        X, _labels = to_arrays(held_out_split(run, data.dataset))
        return X

    return state.cached("explain_held_out", (*_run_key(run), data.version), compute)


def flagged_parts(table: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(rows (n,), parts (n, d) raw)``: the ``index`` of the first `MAX_EXPLAINED`
    parts of a ``workflow.predict`` table whose decision is ``fail`` or ``review``, and
    their raw values from the lot ``dataset``."""
    from soartlab.data import to_arrays
    from soartlab.workflow import flagged

    rows = table["index"].to_numpy()[flagged(table, MAX_EXPLAINED)]
    X, _labels = to_arrays(dataset.select(rows.tolist()))
    return rows, X


def rt_comparison(run: Any, data: state.LoadedData, view: Any) -> tuple[Any, Any]:
    """``(table, baseline)``: the RT baseline's pass/fail figures beside the trained
    run's on the same report half of the held-out parts (``rt.rt_baseline``)."""
    import pandas as pd

    from soartlab.rt import rt_baseline

    def compute():
        explained = explainer(run, data)
        if explained.ref_x is None:
            return None, None
        baseline = rt_baseline(
            explained.ref_x,
            run.references[1],
            run.good_index,
            held_out_parts(run, data),
            view.y_true,
            run_pred=view.y_pred,
            target_escape=run.record.config.target_escape,
            seed=run.record.config.seed,
        )
        rows = []
        for name, figures in (
            (_("RT method (no training)"), baseline.figures),
            (_("This run (nearest neighbour)"), baseline.run_figures),
        ):
            rows.append(
                {
                    _("method"): name,
                    _("pass/fail accuracy"): figures["accuracy"],
                    _("escape"): figures["escape_rate"],
                    _("escapes"): f"{figures['escapes']} / {figures['n_defective']}",
                    _("overkill"): figures["overkill_rate"],
                    _("overkills"): f"{figures['overkills']} / {figures['n_good']}",
                }
            )
        return pd.DataFrame(rows), baseline

    return state.cached("explain_rt", (*_run_key(run), data.version), compute)
