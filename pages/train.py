"""Train: the Siamese network with the tuned SOART3 distance (or Euclidean), in a worker."""

import streamlit as st

from soartlab.config import DEVICES
from soartlab.data import is_image
from soartlab.plots import augmentation_grid
from soartlab.ui import entry, state, train_view
from soartlab.ui.feedback import EngineErrors, engine_message
from soartlab.ui.i18n import N_, _
from soartlab.ui.settings_form import setting_input
from soartlab.ui.widgets import require_data

entry.through_app()

goto = st.session_state.pop("soart_goto", None)
if goto:
    st.switch_page(goto)

st.title(_("Train"))
data = require_data()

LOSS_LABELS = {
    "soart3": N_("SOART3-contrastive (tuned transform)"),
    "euclidean": N_("Euclidean-contrastive (baseline)"),
}
ARCH_LABELS = {
    "auto": _("auto: proposed from the data"),
    "mlp": _("mlp: the article's, fully connected"),
    "cnn": _("cnn: convolutional, defects anywhere"),
}
AUGMENT_WORDS = {
    "auto": _("auto: all with cnn, none with mlp"),
    "flip": _("flips"),
    "rot90": _("90° rotations"),
    "shift": _("small shifts"),
    "jitter": _("brightness and contrast"),
}
images = is_image(data.dataset)
job = train_view.job()
running = job is not None and job.is_running()

tuned = state.tuned_transform()
resume_from = st.session_state.get(state.RESUME_FROM)
guard = EngineErrors()
notice = st.container()  # what Start would refuse, filled once the settings are known

# Enter in a field must not start training before the other fields are set.
with st.form("train_settings", border=True, enter_to_submit=False):
    cols = st.columns(3)
    settings = {
        "loss": setting_input(
            "loss", cols[0], radio=True, format_func=lambda loss: _(LOSS_LABELS[loss])
        )
    }
    if tuned is None:
        cols[0].caption(
            _(
                "Transform: the article's values if the loss learns from them on this data "
                "and network, else Suggest's; decided at Start. Tune to choose another."
            )
        )
    else:
        t = tuned.transform
        cols[0].caption(
            _("Transform: scale {scale:.3g}, offset {offset:.3g}, floor {floor:.3g}.").format(
                scale=t.scale, offset=t.offset, floor=t.floor
            )
        )
    settings["margin"] = setting_input("margin", cols[0])
    for name in ("epochs", "pairs_per_epoch", "batch_size"):
        settings[name] = setting_input(name, cols[1])
    for name in ("lr", "seed"):
        settings[name] = setting_input(name, cols[2])
    gpu = train_view.gpu_name()
    devices = DEVICES if gpu else [d for d in DEVICES if d != "cuda"]
    settings["device"] = setting_input("device", cols[2], options=devices)
    cols[2].caption(
        _("GPU: {name}").format(name=gpu)
        if gpu
        else _("No CUDA GPU found: training runs on the CPU.")
    )
    net_cols = st.columns(3)
    if images:
        settings["arch"] = setting_input("arch", net_cols[0], format_func=ARCH_LABELS.get)
        settings["augment"] = setting_input(
            "augment", net_cols[0], multi=AUGMENT_WORDS, format_func=AUGMENT_WORDS.get
        )
    else:
        settings["arch"], settings["augment"] = "mlp", "none"
        net_cols[0].caption(_("Feature vectors: the mlp network, without augmentation."))
    for name in ("val_size", "patience"):
        settings[name] = setting_input(name, net_cols[1])
    settings["weight_decay"] = setting_input("weight_decay", net_cols[2])
    net_cols[2].caption(
        _(
            "A validation part of the training rows chooses the epoch to keep; the held-out "
            "figures are computed once, on that model."
        )
    )
    label = st.text_input(
        _("Run name (optional)"), key=state.persisted("train_label", ""), max_chars=80
    )
    if resume_from:
        st.info(
            _("Next round: continues from run {run}.").format(run=resume_from.rsplit("/", 1)[-1])
        )
    start = st.form_submit_button(_("Start training"), type="primary", disabled=running)

if images:
    with st.expander(_("Preview augmentation")), guard:
        originals, drawn, names, chosen = train_view.augmentation_preview(
            data, settings["augment"], settings["arch"]
        )
        if settings["augment"] == "auto":
            st.caption(_("auto augments the cnn's training only; the mlp trains without."))
        if chosen.active:
            st.caption(
                _("Each row: a sample, then draws as training sees them ({which}).").format(
                    which=chosen.to_spec()
                )
            )
            st.plotly_chart(
                augmentation_grid(originals, drawn, names, translate=_),
                key="augment_preview",
                width="stretch",
            )
        else:
            st.caption(_("No augmentation with these settings."))

if resume_from and not running:
    if st.button(_("Start from scratch instead"), help=_("Forget the run to continue from.")):
        st.session_state.pop(state.RESUME_FROM, None)
        st.rerun()

if tuned is not None and not running:
    # A tuned transform may teach this network nothing: say so before Start (with no
    # tuned transform the run takes one that learns).
    with guard:
        planned = train_view.make_config(tuned=tuned, good_class=data.good_class, **settings)
        problem = train_view.learnability_problem(data, planned, resume_from)
        if problem:
            notice.warning(
                _("{problem} Start would refuse this setting.").format(
                    problem=engine_message(problem)
                )
            )

if start and not running:
    with guard:
        config = train_view.make_config(tuned=tuned, good_class=data.good_class, **settings)
        train_view.start(
            data.dataset,
            config,
            label=label,
            resume_from=resume_from,
            auto_transform=tuned is None,
        )
        st.rerun()

train_view.monitor()
train_view.results()
