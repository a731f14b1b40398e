"""Predict: apply a trained model to a new lot; pass/review/fail per sample, as a CSV."""

import streamlit as st

from soartlab.ui import data_io, entry, i18n, predict, state
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
        current = state.current_run_dir()
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
        _("CSV, TSV, Parquet, NPZ or zip of class folders; a label column is optional"),
        type=list(data_io.UPLOAD_TYPES),
        key="predict_samples_file",
    )
    if file is not None:
        with guard:
            dataset = predict.uploaded_samples(file)
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
table = metrics = None
with guard, st.spinner(_("Predicting…")):
    table, metrics = predict.predictions(run, dataset, (*predict.run_key(run), key))
if table is None:
    st.stop()
if metrics is not None:
    rates_row(metrics)
counts = table["decision"].value_counts()
st.markdown(
    _("**{passed:,} pass, {failed:,} fail, {review:,} review** of {n:,} samples").format(
        passed=counts.get("pass", 0),
        failed=counts.get("fail", 0),
        review=counts.get("review", 0),
        n=len(table),
    )
)
if counts.get("review", 0):
    n = counts["review"]
    st.warning(
        _(
            "{n:,} sample(s) cannot be scored honestly (see the 'reason' column: values "
            "beyond what the model can compute with); never passed. Check by hand."
        ).format(n=n)
    )
st.download_button(
    _("Download predictions (.csv)"),
    data=table.to_csv(index=False).encode("utf-8"),
    file_name="soartlab-predictions.csv",
    mime="text/csv",
    on_click="ignore",
    type="primary",
)
st.dataframe(
    predict.shown_table(table), hide_index=True, width="stretch", height=420
)
