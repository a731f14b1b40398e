"""Train: the Siamese network with the tuned SOART3 distance (or Euclidean), in a worker."""

import streamlit as st

from soartlab.ui import state, train_view
from soartlab.ui.feedback import EngineErrors
from soartlab.ui.widgets import require_data

goto = st.session_state.pop("soart_goto", None)
if goto:
    st.switch_page(goto)

st.title("Train")
data = require_data()

LOSSES = {
    "SOART3-contrastive (tuned transform)": "soart3",
    "Euclidean-contrastive (baseline)": "euclidean",
}
job = train_view.job()
running = job is not None and job.is_running()

tuned = state.tuned_transform()
resume_from = st.session_state.get(state.RESUME_FROM)

with st.form("train_settings", border=True):
    cols = st.columns(3)
    loss_label = cols[0].radio(
        "Loss", list(LOSSES), key=state.persisted("train_loss", list(LOSSES)[0])
    )
    if tuned is None:
        cols[0].caption(
            "Transform: the seed's values (scale 0.5, offset −0.25, floor 0). Tune to change them."
        )
    else:
        t = tuned.transform
        cols[0].caption(
            f"Transform: scale {t.scale:.3g}, offset {t.offset:.3g}, floor {t.floor:.3g}."
        )
    margin = cols[0].number_input(
        "Margin",
        min_value=0.01,
        max_value=100.0,
        step=0.1,
        key=state.persisted("train_margin", 1.0),
    )
    epochs = cols[1].number_input(
        "Epochs", min_value=1, max_value=1000, step=1, key=state.persisted("train_epochs", 5)
    )
    pairs = cols[1].number_input(
        "Pairs per epoch",
        min_value=100,
        max_value=1_000_000,
        step=1000,
        key=state.persisted("train_pairs", 10_000),
    )
    batch = cols[1].number_input(
        "Batch size", min_value=2, max_value=8192, step=32, key=state.persisted("train_batch", 128)
    )
    lr = cols[2].number_input(
        "Learning rate",
        min_value=1e-6,
        max_value=1.0,
        step=1e-4,
        format="%.5f",
        key=state.persisted("train_lr", 1e-3),
    )
    seed = cols[2].number_input(
        "Seed", min_value=0, max_value=2**31 - 1, step=1, key=state.persisted("train_seed", 0)
    )
    gpu = train_view.gpu_name()
    device_options = ["auto", "cpu", "cuda"] if gpu else ["auto", "cpu"]
    device = cols[2].selectbox(
        "Device", device_options, key=state.persisted("train_device", "auto")
    )
    cols[2].caption(f"GPU: {gpu}" if gpu else "No CUDA GPU found: training runs on the CPU.")
    label = st.text_input(
        "Run name (optional)", key=state.persisted("train_label", ""), max_chars=80
    )
    if resume_from:
        st.info(f"Next round: continues from run {resume_from.rsplit('/', 1)[-1]}.")
    start = st.form_submit_button("Start training", type="primary", disabled=running)

if resume_from and not running:
    if st.button("Start from scratch instead", help="Forget the run to continue from."):
        st.session_state.pop(state.RESUME_FROM, None)
        st.rerun()

if start and not running:
    guard = EngineErrors()
    with guard:
        config = train_view.make_config(
            loss=LOSSES[loss_label],
            margin=float(margin),
            epochs=int(epochs),
            pairs_per_epoch=int(pairs),
            batch_size=int(batch),
            lr=float(lr),
            seed=int(seed),
            device=device,
            good_class=data.good_class,
            tuned=tuned,
        )
        train_view.start(data.dataset, config, label=label, resume_from=resume_from)
        st.rerun()

train_view.monitor()
train_view.results()
