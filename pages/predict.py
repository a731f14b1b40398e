"""Predict: apply a trained model to a new lot; pass/review/fail per sample, as a CSV."""

import streamlit as st

from soartlab.plots import sample_grid
from soartlab.ui import auth, data_io, decision_view, entry, explain_view, i18n, predict, state
from soartlab.ui.downloads import table_downloads
from soartlab.ui.explore import per_class_table
from soartlab.ui.feedback import EngineErrors, engine_message
from soartlab.ui.i18n import N_, _
from soartlab.ui.widgets import loss_name, rates_row, run_title

entry.through_app()

st.title(_("Predict"))
guard = EngineErrors()

st.subheader(_("1. Model"))
MODEL_SAVED, MODEL_UPLOAD = N_("A saved run"), N_("Upload a checkpoint")
model_source = st.radio(
    _("Model"),
    [MODEL_SAVED, MODEL_UPLOAD],
    format_func=i18n.formatter(),
    horizontal=True,
    key="predict_model_source",
)
run = None
if model_source == MODEL_SAVED:
    runs, unreadable = state.run_store().scan()  # a broken run folder is shown, not fatal
    for problem in unreadable:
        st.warning(
            _("Skipped a run folder that cannot be read: {problem}").format(
                problem=engine_message(problem)
            )
        )
    if not runs:
        st.info(_("No saved runs yet. Train a model, or upload a checkpoint."))
        st.page_link(
            state.TRAIN_PAGE, label=_("Go to the Train page"), icon=":material/model_training:"
        )
    else:
        # The session's model, else my latest run (not the newest: it may be a colleague's).
        current = state.current_run_dir()
        if current is None:
            mine = state.run_store().latest_of(auth.current())
            current = mine.path if mine is not None else None
        paths = [str(info.path) for info in runs]
        chosen = st.selectbox(
            _("Run"),
            runs,
            index=paths.index(str(current)) if current and str(current) in paths else 0,
            format_func=i18n.formatter(
                lambda info: _("{name} · {loss} · accuracy {accuracy:.1%}").format(
                    name=info.label or info.run_id,
                    loss=loss_name(info.loss),
                    accuracy=info.metrics.get("accuracy", float("nan")),
                )
            ),
            key="predict_run",
        )
        with guard:
            run = predict.load_saved_run(chosen.path)
else:
    files = st.file_uploader(
        _("The .pth with its run.json, the bundle .zip, or a .safetensors file"),
        type=list(predict.MODEL_TYPES),
        accept_multiple_files=True,
        key="predict_model_files",
    )
    if files:
        with guard:
            run = predict.uploaded_model(files)
if run is None:
    st.stop()
shape = "×".join(str(s) for s in run.input_shape)
st.caption(
    _("Model {run} · input {shape} · classes {classes}").format(
        run=run_title(run), shape=shape, classes=", ".join(run.label_names)
    )
)

st.subheader(_("2. Samples"))
SAMPLES_UPLOAD = N_("Upload a new lot")
SAMPLES_HELD_OUT = N_("The held-out part of the session's data")
sample_source = st.radio(
    _("Samples"),
    [SAMPLES_UPLOAD, SAMPLES_HELD_OUT],
    format_func=i18n.formatter(),
    horizontal=True,
    key="predict_sample_source",
)
dataset, key = None, None
if sample_source == SAMPLES_UPLOAD:
    file = st.file_uploader(
        _(
            "CSV, TSV, Excel (.xlsx), Parquet, NPZ, or a zip of images (class folders, one "
            "folder, or images alone); a label column is optional"
        ),
        type=list(data_io.UPLOAD_TYPES),
        key="predict_samples_file",
    )
    if file is not None:
        with guard:
            dataset = predict.uploaded_samples(file, run)
            key = ("upload", file.file_id)
else:
    data = state.loaded_data()
    if data is None:
        st.info(_("No data loaded in this session."))
    else:
        with guard:
            dataset = predict.held_out_samples(run, data.dataset)
            key = ("held_out", data.version)
if dataset is None:
    st.stop()

st.subheader(_("3. Results"))
lot = metrics = None
with guard, st.spinner(_("Predicting…")):
    lot, metrics = predict.predictions(run, dataset, (*predict.run_key(run), key))
if lot is None:
    st.stop()
table = lot.table
decision_view.lot_check(lot.check)
if metrics is not None:
    st.caption(_("By the nearest class (a part passes when its nearest class is good):"))
    rates_row(metrics)
if lot.figures is not None:
    st.caption(_("By the run's pass / review / fail decision (95 % upper bounds in brackets):"))
    decision_view.figures_row(lot.figures)
counts = table["decision"].value_counts()
st.markdown(
    "**"
    + _("{p} pass, {f} fail, {r} review of {n} samples").format(
        p=f"{counts.get('pass', 0):,}",
        f=f"{counts.get('fail', 0):,}",
        r=f"{counts.get('review', 0):,}",
        n=f"{len(table):,}",
    )
    + "**"
)
if lot.point is None:
    st.info(
        _(
            "This run was saved before runs kept an operating point: a part passes when its "
            "nearest class is good. Train it again for pass/review/fail decisions."
        )
    )
if counts.get("review", 0):
    st.warning(
        _(
            "{n} samples go to review: see the 'reason' column (the lot check, values the "
            "model cannot compute with, or a score in the review band). Never passed; "
            "check them by hand."
        ).format(n=f"{counts['review']:,}")
    )
sheets = {"predictions": table}
if metrics is not None:
    sheets["per class"] = per_class_table(metrics).data
table_downloads(sheets, "soartlab-predictions", "predict_download", label=_("predictions"))
st.dataframe(predict.shown_table(table), hide_index=True, width="stretch", height=420)
flagged = predict.flagged_thumbnails(dataset, table)
if flagged is not None:
    images, titles, captions = flagged
    st.subheader(_("Parts judged fail or review"))
    st.plotly_chart(
        sample_grid(
            images, titles, captions=captions, columns=8, max_images=len(images), translate=_
        ),
        key="predict_flagged_grid",
        width="stretch",
    )

n_flagged = int(table["decision"].isin(["fail", "review"]).sum())
if n_flagged:
    st.subheader(_("4. Why: failed and reviewed parts"))
    with guard:
        explained = explain_view.explainer(run, state.loaded_data())
        rows, parts = explain_view.flagged_parts(table, dataset)
        shown = table.set_index("index").loc[rows]
        if n_flagged > len(rows):
            st.caption(
                _("The first {n} of {total} failed or reviewed parts.").format(
                    n=len(rows), total=n_flagged
                )
            )
        explain_view.show_parts(
            run,
            explained,
            parts,
            None,
            [
                _("{part}: {decision} ({predicted})").format(
                    part=name or _("Row {i}").format(i=i),
                    decision=predict.decision_words(item["decision"]),
                    predicted=predict.outcome_words(item),
                )
                for name, (i, item) in zip(
                    predict.part_names(dataset, rows), shown.iterrows(), strict=True
                )
            ],
            [f"row-{i}" for i in rows],
            key="predict",
        )
