"""The session's workspace: its id in the address (``?ws=``), its state on the server.

A browser session is lost on a refresh; a workspace is not. `attach` (app.py, every run)
gives a new session the workspace named in the address — restoring the data choice, the
tuned transform, the current run, "Next round" and the pages' kept settings — or the
signed-in user's latest one, or a new one, and keeps its id in the address. `save` (app.py,
after the page) writes what changed, and keeps an uploaded file (`state.uploaded`). The training job of a workspace lives in the server's
job registry (`soartlab.ui.jobs.JOBS`) under the same id, so the Train page re-attaches.
A signed-in user opens only their own workspaces (`soartlab.workspaces`).
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from soartlab.errors import SoartLabError
from soartlab.ui import auth, state
from soartlab.ui.i18n import _

PARAM = "ws"
SAVED = "soart_workspace_saved"  # the JSON last written, to write only changes
REFUSED = "soart_workspace_refused"  # why the address's workspace was not opened
# Plain values that make up the saved state besides data and transform.
PLAIN_KEYS = (state.CURRENT_RUN, state.RESUME_FROM, state.FINISHED_JOB)


def store() -> Any:
    from soartlab.workspaces import WorkspaceStore

    return WorkspaceStore(state.run_store())


def current() -> Any:
    """This session's `soartlab.workspaces.Workspace` (after `attach`), or None."""
    return st.session_state.get(state.WORKSPACE)


def attach() -> None:
    """Give this session its workspace on its first run; keep the id in the address."""
    workspace = current()
    if workspace is None:
        workspace = _open_or_create()
        st.session_state[state.WORKSPACE] = workspace
        _restore(workspace.read_state(), workspace)
        st.session_state[SAVED] = json.dumps(_state(), sort_keys=True)
    if st.query_params.get(PARAM) != workspace.id:
        st.query_params[PARAM] = workspace.id


def refused() -> str | None:
    """Why the workspace in the address was not opened (shown once), or None."""
    return st.session_state.pop(REFUSED, None)


def _open_or_create() -> Any:
    who = auth.current()
    workspaces = store()
    asked = st.query_params.get(PARAM)
    if asked:
        try:
            return workspaces.open(asked, who)
        except SoartLabError as exc:
            st.session_state[REFUSED] = _("{reason} A new workspace was started.").format(
                reason=str(exc)
            )
    elif who is not None:
        # Sign-in lands on the home page without the address's workspace: go back to
        # the user's latest one.
        latest = workspaces.latest_of(who)
        if latest is not None:
            return latest
    return workspaces.create(who)


def _state() -> dict[str, Any]:
    """The session's state as plain JSON values."""
    out: dict[str, Any] = {key: st.session_state.get(key) for key in PLAIN_KEYS}
    data = state.loaded_data()
    if data is not None:
        source = st.session_state.get(state.DATA_SOURCE) or {"kind": "demo"}
        out["data"] = {**source, "good_class": data.good_class}
    tuned = state.tuned_transform()
    if tuned is not None:
        t = tuned.transform
        out["transform"] = {
            "scale": t.scale,
            "offset": t.offset,
            "floor": t.floor,
            "p_v": float(tuned.p_v),
            "p_m": float(tuned.p_m),
        }
    out["settings"] = {
        key: value
        for key, value in st.session_state.items()
        if str(key).startswith(state.SHADOW_PREFIX) and _plain(value)
    }
    return out


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list | tuple) and all(_plain(v) for v in value)


def save() -> None:
    """Write the session's state into its workspace when it changed since last written."""
    workspace = current()
    if workspace is None:
        return
    upload = st.session_state.pop(state.UPLOAD_TO_KEEP, None)
    if upload is not None:
        workspace.save_data(*upload)
    snapshot = _state()
    text = json.dumps(snapshot, sort_keys=True)
    if st.session_state.get(SAVED) == text:
        return
    workspace.write_state(snapshot)
    st.session_state[SAVED] = text


def _restore(saved: dict[str, Any], workspace: Any) -> None:
    """Put a saved state back into a new session (what cannot be restored is left out:
    a deleted upload falls back to the demo set on first use)."""
    from soartlab.transform import GammaTransform

    for key in PLAIN_KEYS:
        if isinstance(saved.get(key), str):
            st.session_state[key] = saved[key]
    settings = saved.get("settings")
    if isinstance(settings, dict):
        for key, value in settings.items():
            if str(key).startswith(state.SHADOW_PREFIX) and _plain(value):
                st.session_state[key] = value
    transform = saved.get("transform")
    if isinstance(transform, dict):
        try:
            state.set_tuned_transform(
                state.TunedTransform(
                    GammaTransform(transform["scale"], transform["offset"], transform["floor"]),
                    p_v=float(transform.get("p_v", 4)),
                    p_m=float(transform.get("p_m", 1)),
                )
            )
        except (SoartLabError, KeyError, TypeError, ValueError):
            pass  # a damaged entry: the Train page decides the transform at Start
    data = saved.get("data")
    if isinstance(data, dict):
        _restore_data(data, workspace)


def _reading_options(saved: Any) -> dict[str, Any]:
    """The Data page's reading options as saved in the workspace (JSON), for
    `data_io.load_from_bytes`: a sheet name, ID columns, an image size."""
    if not isinstance(saved, dict):
        return {}
    options: dict[str, Any] = {}
    if isinstance(saved.get("sheet"), str):
        options["sheet"] = saved["sheet"]
    if isinstance(saved.get("id_columns"), list):
        options["id_columns"] = [str(c) for c in saved["id_columns"]]
    size = saved.get("image_size")
    if isinstance(size, list | tuple) and len(size) == 2:
        options["image_size"] = (int(size[0]), int(size[1]))
    return options


def _restore_data(data: dict[str, Any], workspace: Any) -> None:
    from soartlab.ui import data_io

    good_class = data.get("good_class") if isinstance(data.get("good_class"), str) else None
    if data.get("kind") == "upload":
        path = workspace.data_file()
        name = str(data.get("name") or "upload")
        if path is None:
            return
        try:
            dataset = data_io.load_from_bytes(
                path.name,
                path.read_bytes(),
                label_column=str(data.get("label_column") or "label"),
                input_shape=data_io.parse_shape(str(data.get("shape") or "")),
                **_reading_options(data.get("options")),
            )
        except (SoartLabError, OSError, TypeError, ValueError):
            return
        state.set_dataset(dataset, name, good_class)
        st.session_state[state.DATA_SOURCE] = {
            k: data.get(k) for k in ("kind", "name", "label_column", "shape", "options")
        }
        return
    state.set_dataset(state.demo_dataset(), "demo set", good_class)
