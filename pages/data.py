"""Data: upload inspection data or pick the demo set; see classes, samples and shape."""

import streamlit as st

from soartlab.plots import class_counts_bar, sample_grid
from soartlab.ui import data_io, entry, state
from soartlab.ui.feedback import EngineErrors
from soartlab.ui.i18n import _

entry.through_app()

MAX_UPLOAD_MB = st.get_option("server.maxUploadSize")

st.title(_("Data"))

# "Use the demo set" also empties the uploader (a new key): a file left in it was loaded
# again on the same run, so the demo set never stayed.
uploader_round = st.session_state.setdefault("data_upload_round", 0)

with st.container(border=True):
    st.markdown("**" + _("Load data") + "**")
    left, right = st.columns([3, 1])
    with left:
        uploaded = st.file_uploader(
            _(
                "CSV, TSV, Excel (.xlsx), Parquet, NPZ, or a zip of class folders (up to {mb} MB)"
            ).format(mb=MAX_UPLOAD_MB),
            type=list(data_io.UPLOAD_TYPES),
            key=f"data_upload_{uploader_round}",
            help=_(
                "Tables: a label column and numeric feature columns (px_<row>_<col> for "
                "images) or a 'features' column of lists. Zip: one folder per class."
            ),
        )
    with right:
        if st.button(_("Use the demo set"), width="stretch"):
            state.set_dataset(state.demo_dataset(), state.DEMO_NAME)
            st.session_state.pop(data_io.UPLOAD_MESSAGE, None)
            st.session_state.pop(data_io.LAST_UPLOAD, None)
            st.session_state["data_upload_round"] = uploader_round + 1
            st.rerun()  # draws the emptied uploader

    if uploaded is not None:
        raw = uploaded.getvalue()
        sheet = None
        found = data_io.table_outline(uploaded.name, raw)
        if len(found.sheets) > 1:
            sheet = st.selectbox(
                _("Sheet"),
                found.sheets,
                key=f"data_sheet_{uploaded.file_id}",
                help=_("The workbook has several sheets; the first is read unless you choose."),
            )
            found = data_io.table_outline(uploaded.name, raw, sheet)
        columns = found.columns
        label_column = "label"
        shape_text = ""
        options = st.columns(2)
        if columns:
            label_column = options[0].selectbox(
                _("Label column"),
                columns,
                index=columns.index("label") if "label" in columns else 0,
                key="data_label_column",
            )
            shape_text = options[1].text_input(
                _("Image shape H×W (optional)"),
                key="data_shape",
                placeholder=_("e.g. 36x39"),
                help=_("Only for feature tables whose columns are not named px_<row>_<col>."),
            )
        # ID columns and the image size are the loader's own choice until the user
        # changes them (below the load): then theirs, kept per upload
        ids_key = f"data_ids_{uploaded.file_id}_{label_column}"
        size_key = f"data_size_{uploaded.file_id}"
        load_options = {
            "sheet": sheet,
            "id_columns": st.session_state.get(ids_key + "_chosen"),
            "image_size": st.session_state.get(size_key + "_chosen"),
        }
        signature = (uploaded.file_id, label_column, shape_text, repr(load_options))
        if st.session_state.get(data_io.LAST_UPLOAD) != signature:
            st.session_state[data_io.LAST_UPLOAD] = signature
            st.session_state[state.PENDING_UPLOAD] = (
                uploaded.name,
                raw,
                label_column,
                shape_text,
                load_options,
            )

    # The uploader and tests both hand bytes over through PENDING_UPLOAD.
    if state.PENDING_UPLOAD in st.session_state:
        with st.spinner(_("Checking the file…")):
            data_io.apply_pending_upload()
    data_io.show_upload_message()

    def _choose(key: str, value) -> None:
        st.session_state[key + "_chosen"] = value

    loaded = state.loaded_data()
    if uploaded is not None and loaded is not None and loaded.name == uploaded.name:
        from soartlab.data import file_notes, id_columns, input_shape, is_image

        if columns:
            candidates = [c for c in columns if c != label_column]
            current = [c for c in id_columns(loaded.dataset) if c in candidates]
            st.multiselect(
                _("ID columns (kept and carried to predictions, never features)"),
                candidates,
                default=current,
                key=ids_key,
                on_change=lambda: _choose(ids_key, list(st.session_state[ids_key])),
                help=_(
                    "Columns that name a part (part number, lot, file name). Columns of "
                    "text are chosen automatically."
                ),
            )
        if is_image(loaded.dataset) and "image_size" in file_notes(loaded.dataset):
            height, width = input_shape(loaded.dataset)
            size_columns = st.columns([1, 1, 2])
            new_height = size_columns[0].number_input(
                _("Image height for training"), 1, 512, int(height), key=size_key + "_h"
            )
            new_width = size_columns[1].number_input(
                _("Image width for training"), 1, 512, int(width), key=size_key + "_w"
            )
            size_columns[2].caption(
                _("Default: the images' own size. Every image is resized to this size.")
            )
            if (new_height, new_width) != (height, width):
                _choose(size_key, (int(new_height), int(new_width)))
                st.rerun()

data = state.loaded_data()
if data is None:
    st.info(_("Upload a file above, or use the demo set."))
    st.stop()

guard = EngineErrors()
with guard:
    summary = data_io.summarize(data)
if guard.failed:
    st.stop()

st.subheader(
    _("{name}: {n} samples, {k} classes").format(
        name=state.data_title(data), n=f"{len(data.dataset):,}", k=len(summary.label_names)
    )
)
st.markdown(_("**Classes found** · {classes}").format(classes=data_io.classes_text(summary)))
for line in data_io.reading_notes(summary):
    st.caption(line)
resize_note = data_io.resize_note(summary, len(data.dataset))
if resize_note:
    st.warning(resize_note)
if summary.id_columns:
    st.markdown(
        _("**ID columns** · {columns} (kept with each part, never features)").format(
            columns=", ".join(summary.id_columns)
        )
    )
good_index = (
    summary.label_names.index(data.good_class) if data.good_class in summary.label_names else 0
)
good = st.selectbox(
    _("The good (pass) class"),
    summary.label_names,
    index=good_index,
    help=_("Escape and overkill rates are counted against this class."),
)
if good != data.good_class:
    state.set_good_class(good)
    st.rerun()

shape = "×".join(str(s) for s in summary.input_shape)
kind = _("grayscale images") if summary.is_image else _("feature vectors")
st.markdown(
    _("**Input** · {kind}, shape {shape}  \n**Normalisation** · {normalization}").format(
        kind=kind, shape=shape, normalization=summary.normalization
    )
)
small = [n for n, c in zip(summary.label_names, summary.counts, strict=True) if c < 5]
if small:
    st.warning(
        _("Classes with fewer than 5 samples: {names}. Training may be unstable.").format(
            names=", ".join(small)
        )
    )

st.plotly_chart(
    class_counts_bar(summary.label_names, summary.counts, good_index=good_index, translate=_),
    key="data_counts",
    width="stretch",
)

if summary.is_image:
    st.subheader(_("Samples per class"))
    st.caption(
        _("One row per class (its name over the first image; file names below).")
        if any(summary.example_files.values())
        else _("One row per class (its name over the first image).")
    )
    images, titles, captions, each = data_io.example_grid(summary)
    st.plotly_chart(
        sample_grid(
            images,
            titles,
            columns=each,
            captions=captions if any(captions) else None,
            max_images=len(images),
            translate=_,
        ),
        key="data_grid",
        width="stretch",
    )
