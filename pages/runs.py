"""Runs: every saved run; open, compare, rename (label only) and delete them."""

import streamlit as st

from soartlab.access import may_change, owns
from soartlab.ui import auth, entry, i18n, runs_view, state, train_view
from soartlab.ui.feedback import EngineErrors, engine_message
from soartlab.ui.i18n import _

entry.through_app()

st.title(_("Runs"))
store = state.run_store()
st.caption(
    _("Saved under {folder}. A refresh or a closed tab loses nothing.").format(folder=store.home)
)
guard = EngineErrors()

who = auth.current()  # None: local single-user mode, every run is yours
infos, unreadable = store.scan()
if who is not None:
    MINE, TEAM = _("Mine"), _("The team's")
    shown = st.segmented_control(
        _("Runs"),
        [MINE, TEAM],
        key=state.persisted("runs_whose", MINE),
        label_visibility="collapsed",
    )
    if shown != TEAM:
        infos = [info for info in infos if owns(who, info.owner)]
for problem in unreadable:
    st.warning(
        _("Skipped a run folder that cannot be read: {problem}").format(
            problem=engine_message(problem)
        )
    )
notice = st.session_state.pop("runs_notice", None)
if notice:
    st.success(notice)
if not infos:
    st.info(_("No runs yet."))
    st.page_link(
        state.TRAIN_PAGE, label=_("Train the first model"), icon=":material/model_training:"
    )
    st.stop()

st.dataframe(
    runs_view.runs_table(infos, state.current_run_dir(), owners=who is not None),
    hide_index=True,
    width="stretch",
)

by_id = {info.run_id: info for info in infos}
ids = list(by_id)
current = state.current_run_dir()
run_id = st.selectbox(
    _("Run"),
    ids,
    index=ids.index(current.name) if current is not None and current.name in ids else 0,
    format_func=i18n.formatter(lambda rid: runs_view.describe(by_id[rid])),
    key="runs_selected",
)
chosen = by_id[run_id]
allowed = may_change(who, chosen.owner)  # the engine checks again (by=who)

actions = st.columns(3)
with actions[0]:
    st.markdown("**" + _("Open") + "**")
    if st.button(_("Make it the current model"), key="runs_open"):
        with guard:
            state.set_current_run(store.open(run_id).path)
            state.current_run()  # loads now, so a broken run shows its error here
            st.session_state["runs_notice"] = _("Opened {run}.").format(
                run=runs_view.describe(chosen)
            )
            st.rerun()
    st.page_link(
        state.EXPLORE_PAGE, label=_("Explore the current model"), icon=":material/scatter_plot:"
    )
with actions[1]:
    st.markdown("**" + _("Rename") + "**")
    new_label = st.text_input(
        _("New name (a label only)"), value=chosen.label, key=f"runs_label_{run_id}", max_chars=100
    )
    if st.button(_("Rename"), key="runs_rename", disabled=not allowed):
        with guard:
            store.rename(run_id, new_label, by=who)
            st.session_state["runs_notice"] = _("Renamed.")
            st.rerun()
with actions[2]:
    st.markdown("**" + _("Delete") + "**")
    sure = st.checkbox(
        _("Yes, delete this run and its files"), key=f"runs_sure_{run_id}", disabled=not allowed
    )
    if st.button(_("Delete"), key="runs_delete", disabled=not (sure and allowed)):
        with guard:
            store.delete(run_id, by=who)
            if current is not None and current.name == run_id:
                state.set_current_run(None)
            st.session_state["runs_notice"] = _("Deleted {run}.").format(run=run_id)
            st.rerun()

if not allowed:
    whose = chosen.owner or _("the team (made without sign-in)")
    st.caption(
        _("This run is {whose}'s: only its owner or an admin can rename or delete it.").format(
            whose=whose
        )
    )
train_view.downloads(chosen.path)

st.subheader(_("Compare"))
compared = st.multiselect(
    _("Runs side by side"),
    ids,
    default=ids[:2],
    format_func=i18n.formatter(lambda rid: runs_view.describe(by_id[rid])),
    key="runs_compare",
    max_selections=4,
)
if compared:
    runs_view.compare([by_id[rid] for rid in compared])
    st.caption(
        _(
            "Metrics as saved with each run (on its own held-out split). The Explore page "
            "scores two runs on the same samples."
        )
    )
