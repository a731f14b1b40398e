"""Explore: embeddings, confusion matrix, escape/overkill and the samples behind them."""

import streamlit as st

from soartlab.plots import confusion_heatmap, pca_scatter, sample_grid
from soartlab.ui import decision_view, entry, explain_view, explore, i18n, state
from soartlab.ui.downloads import table_downloads
from soartlab.ui.feedback import EngineErrors
from soartlab.ui.i18n import _
from soartlab.ui.widgets import loss_name, rates_row, require_data, require_run, run_title

entry.through_app()

st.title(_("Explore"))
data = require_data()
run = require_run(_("explore its embeddings"))

guard = EngineErrors()
view = None
with guard, st.spinner(_("Embedding the held-out samples…")):
    view = explore.held_out_view(run, data)
if view is None:
    st.page_link(
        state.DATA_PAGE,
        label=_("Load the data this model was trained on"),
        icon=":material/folder_open:",
    )
    st.stop()

st.caption(
    _("Run {run} · {n:,} held-out samples of {data}").format(
        run=run_title(run), n=len(view.y_true), data=state.data_title(data)
    )
)
rates_row(view.metrics, baselines=run.record.baselines)
with guard:
    decision_view.operating_point_panel(run, "explore")

left, right = st.columns(2)
with left:
    st.subheader(_("Embeddings (PCA)"))
    dims = st.radio(
        _("Projection"), ["2D", "3D"], horizontal=True, key=state.persisted("explore_dims", "2D")
    )
    with guard:
        points = explore.projected(view, 3 if dims == "3D" else 2)
        figure = pca_scatter(
            points,
            view.y_true,
            view.label_names,
            good_index=view.good_index,
            predictions=view.y_pred,
            translate=_,
        )
        figure.update_layout(height=480, margin={"t": 30})
        st.plotly_chart(figure, key="explore_pca", width="stretch")
    st.caption(
        _(
            "Colour: the true class. Circles: good parts, diamonds: defects, crosses: "
            "misclassified parts of either. Hover for index, label and prediction."
        )
    )

with right:
    st.subheader(_("Confusion matrix"))
    heatmap = confusion_heatmap(view.metrics["confusion"], view.label_names, translate=_)
    heatmap.update_layout(height=480, margin={"t": 30})
    event = st.plotly_chart(
        heatmap,
        key="explore_confusion",
        on_select="rerun",
        selection_mode="points",
        width="stretch",
    )
    st.caption(
        _("Counts with row % in brackets. Click a cell, or pick one below, to see its samples.")
    )

st.subheader(_("Per class"))
per_class = explore.per_class_table(view.metrics)
st.dataframe(per_class, hide_index=True, width="stretch")
table_downloads(
    {"per class": per_class.data},
    "soartlab-per-class",
    "explore_per_class",
    label=_("per-class table"),
)

st.subheader(_("Beside a method without training: RT"))
with guard:
    rt_table, rt = explain_view.rt_comparison(run, data, view)
    if rt_table is None:
        st.caption(_("The RT baseline needs the reference parts of this run's own data."))
    else:
        rates = [c for c in rt_table.columns if rt_table[c].dtype.kind == "f"]
        st.dataframe(
            rt_table.style.format({c: "{:.1%}" for c in rates}), hide_index=True, width="stretch"
        )
        st.caption(
            _(
                "Taguchi's RT method on the raw values: a unit space from the good training "
                "parts, each part's sensitivity β and standard-deviation term against its "
                "mean, and their Mahalanobis distance. Its threshold ({t:.4g}) is chosen on "
                "half of the held-out parts for at most {target:.1%} escapes; both rows "
                "are counted on the other {n} parts."
            ).format(
                t=rt.threshold,
                target=rt.target_escape,
                n=len(rt.report_rows),
            )
        )

st.subheader(_("Samples in a cell"))
names = view.label_names
cells = explore.confusion_cells(view.metrics["confusion"])
points_selected = event.selection.points if event and event.selection else []
if points_selected:
    clicked = points_selected[0]
    cell = (names.index(str(clicked["y"])), names.index(str(clicked["x"])))
    if cell not in cells:
        cells.insert(0, cell)
    st.session_state["explore_cell"] = cell
cell = st.selectbox(
    _("True → predicted"),
    cells,
    format_func=i18n.formatter(
        lambda c: f"{names[c[0]]} → {names[c[1]]} ({view.metrics['confusion'][c[0]][c[1]]})"
    ),
    key="explore_cell",
)
if cell is not None:
    members = explore.cell_samples(view, *cell)
    if view.images is None:
        st.dataframe({_("held-out index"): members}, hide_index=True)
    elif len(members):
        st.plotly_chart(
            sample_grid(
                view.images[members],
                [f"#{i}" for i in members],
                columns=10,
                captions=(
                    None
                    if view.files is None
                    else [view.files[i].rsplit("/", 1)[-1] for i in members]
                ),
                translate=_,
            ),
            key="explore_cell_grid",
            width="stretch",
        )
    if len(members):
        st.markdown(_("**Why:** nearest good and defective references, and heatmaps"))
        with guard:
            explained = explain_view.explainer(run, data)
            explain_view.show_parts(
                run,
                explained,
                explain_view.held_out_parts(run, data)[members],
                view.embeddings[members],
                [
                    _("#{i}: {true}, judged {pred}").format(
                        i=i, true=names[cell[0]], pred=names[cell[1]]
                    )
                    for i in members
                ],
                [f"held-out-{i}" for i in members],
                key="explore",
            )

st.subheader(_("Compare with another run"))
others = [info for info in state.run_store().list() if str(info.path) != str(run.run_dir)]
if not others:
    st.caption(_("Train a second run (e.g. the Euclidean baseline) to compare it here."))
else:
    other_info = st.selectbox(
        _("Run"),
        [None, *others],
        format_func=i18n.formatter(
            lambda info: (
                "—" if info is None else f"{info.label or info.run_id} ({loss_name(info.loss)})"
            )
        ),
        key="explore_compare",
    )
    if other_info is not None:
        with guard:
            other = explore.load_other_run(other_info.path)
            pair = (run, other)
            views = [explore.held_out_view(shown, data, split_runs=pair) for shown in pair]
            a, b = st.columns(2)
            for column, shown_run, shown in ((a, run, views[0]), (b, other, views[1])):
                with column:
                    loss = shown_run.record.config.loss
                    st.markdown(f"**{run_title(shown_run)}** · {loss_name(loss)}")
                    rates_row(shown.metrics)
                    figure = confusion_heatmap(
                        shown.metrics["confusion"], shown.label_names, translate=_
                    )
                    figure.update_layout(height=380, margin={"t": 20})
                    st.plotly_chart(figure, key=f"compare_{column is a}", width="stretch")
            st.caption(
                _(
                    "Both runs are scored on the same {n:,} samples: those that both held "
                    "out from training."
                ).format(n=len(views[0].y_true))
            )
