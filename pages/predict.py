"""Predict: apply a trained model to a new lot; pass/review/fail per sample, as a CSV."""

import streamlit as st

from soartlab.ui import auth, data_io, entry, predict, state
from soartlab.ui.feedback import EngineErrors
from soartlab.ui.widgets import rates_row, run_title

entry.through_app()

st.title("Predict")
guard = EngineErrors()

st.subheader("1. Model")
MODEL_SAVED, MODEL_UPLOAD = "A saved run", "Upload a checkpoint"
model_source = st.radio(
    "Model", [MODEL_SAVED, MODEL_UPLOAD], horizontal=True, key="predict_model_source"
)
run = None
if model_source == MODEL_SAVED:
    runs, unreadable = state.run_store().scan()  # a broken run folder is shown, not fatal
    for problem in unreadable:
        st.warning(f"Skipped a run folder that cannot be read: {problem}")
    if not runs:
        st.info("No saved runs yet. Train a model, or upload a checkpoint.")
        st.page_link(
            state.TRAIN_PAGE, label="Go to the Train page", icon=":material/model_training:"
        )
    else:
        # The session's model, else my latest run (not the newest: it may be a colleague's).
        current = state.current_run_dir()
        if current is None:
            mine = state.run_store().latest_of(auth.current())
            current = mine.path if mine is not None else None
        paths = [str(info.path) for info in runs]
        chosen = st.selectbox(
            "Run",
            runs,
            index=paths.index(str(current)) if current and str(current) in paths else 0,
            format_func=lambda info: (
                f"{info.label or info.run_id} · {info.loss or '?'} · "
                f"accuracy {info.metrics.get('accuracy', float('nan')):.1%}"
            ),
            key="predict_run",
        )
        with guard:
            run = predict.load_saved_run(chosen.path)
else:
    files = st.file_uploader(
        "The .pth with its run.json, the bundle .zip, or a .safetensors file",
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
st.caption(f"Model {run_title(run)} · input {shape} · classes {', '.join(run.label_names)}")

st.subheader("2. Samples")
SAMPLES_UPLOAD, SAMPLES_HELD_OUT = "Upload a new lot", "The held-out part of the session's data"
sample_source = st.radio(
    "Samples", [SAMPLES_UPLOAD, SAMPLES_HELD_OUT], horizontal=True, key="predict_sample_source"
)
dataset, key = None, None
if sample_source == SAMPLES_UPLOAD:
    file = st.file_uploader(
        "CSV, TSV, Parquet, NPZ or zip of class folders; a label column is optional",
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
        st.info("No data loaded in this session.")
    else:
        with guard:
            dataset = predict.held_out_samples(run, data.dataset)
            key = ("held_out", data.version)
if dataset is None:
    st.stop()

st.subheader("3. Results")
table = metrics = None
with guard, st.spinner("Predicting…"):
    table, metrics = predict.predictions(run, dataset, (*predict.run_key(run), key))
if table is None:
    st.stop()
if metrics is not None:
    rates_row(metrics)
counts = table["decision"].value_counts()
st.markdown(
    f"**{counts.get('pass', 0):,} pass, {counts.get('fail', 0):,} fail, "
    f"{counts.get('review', 0):,} review** of {len(table):,} samples"
)
if counts.get("review", 0):
    n = counts["review"]
    st.warning(
        f"{n:,} {'sample' if n == 1 else 'samples'} cannot be scored honestly (see the "
        "'reason' column: values beyond what the model can compute with); never passed. "
        "Check by hand."
    )
st.download_button(
    "Download predictions (.csv)",
    data=table.to_csv(index=False).encode("utf-8"),
    file_name="soartlab-predictions.csv",
    mime="text/csv",
    on_click="ignore",
    type="primary",
)
st.dataframe(table, hide_index=True, width="stretch", height=420)
