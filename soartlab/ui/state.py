"""Per-session state of the app: keys and accessors over ``st.session_state``.

Every user's dataset, tuned transform, current run and training job live here, one
copy per browser session. Nothing user-specific is put in ``st.cache_data`` or
``st.cache_resource``, which every visitor shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from soartlab.transform import GammaTransform

DATA_PAGE = "pages/data.py"
TUNE_PAGE = "pages/tune.py"
TRAIN_PAGE = "pages/train.py"
EXPLORE_PAGE = "pages/explore.py"
PREDICT_PAGE = "pages/predict.py"
RUNS_PAGE = "pages/runs.py"

DATASET = "soart_dataset"  # LoadedData | None
TRANSFORM = "soart_transform"  # TunedTransform | None: what "Use for training" stored
CURRENT_RUN = "soart_current_run"  # str (run directory) | None
LOADED_RUN = "soart_loaded_run"  # (run_dir, LoadedRun): the opened run, loaded once
TRAIN_JOB = "soart_train_job"  # TrainingJob | None: also in jobs.JOBS under the workspace
FINISHED_JOB = "soart_finished_job"  # job_id of the job whose end was already taken in
WORKSPACE = "soart_workspace"  # soartlab.workspaces.Workspace of this session (ui.workspace)
DATA_SOURCE = "soart_data_source"  # dict: where the data came from (ui.workspace); None: demo
UPLOAD_TO_KEEP = "soart_upload_to_keep"  # (name, bytes): for ui.workspace.save to keep
RESUME_FROM = "soart_resume_from"  # str (run directory) | None: "Next round"
TUNE_SOURCE = "tune_source"  # widget key; "Next round" sets it to the model
# Test hook and file_uploader alike go through this: (file name, bytes, label column).
PENDING_UPLOAD = "soart_pending_upload"
SHADOW_PREFIX = "_keep_"
CACHE_PREFIX = "_cache_"


DEMO_NAME = "demo set"  # LoadedData.name of the built-in demo set (shown translated)


@dataclass(frozen=True)
class LoadedData:
    """A validated dataset and where it came from."""

    dataset: Any  # datasets.Dataset, as soartlab.data.load_dataset returns it
    name: str  # shown to the user: "demo set" or the uploaded file name
    good_class: str  # the class that passes inspection
    version: int  # bumped on every load, so caches keyed on it go stale


@dataclass(frozen=True)
class TunedTransform:
    """Transform values stored with "Use for training" and the SOART3 orders they used."""

    transform: GammaTransform
    p_v: float = 4
    p_m: float = 1


def persisted(key: str, default: Any) -> str:
    """Seed widget ``key`` from a shadow copy that survives page switches; returns key.

    Streamlit drops a widget's state when a run does not draw it (another page is
    open); the shadow entry is plain state and stays. Call before creating the widget
    and pass no ``value=`` / ``index=`` to it.
    """
    shadow = SHADOW_PREFIX + key
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(shadow, default)
    st.session_state[shadow] = st.session_state[key]
    return key


def remember(key: str, value: Any) -> None:
    """Set a persisted widget's value (call from a callback, before the widget draws)."""
    st.session_state[key] = value
    st.session_state[SHADOW_PREFIX + key] = value


def loaded_data() -> LoadedData | None:
    return st.session_state.get(DATASET)


def data_title(data: LoadedData) -> str:
    """The data's name as shown: the uploaded file's name, or "demo set" translated."""
    from soartlab.ui.i18n import _

    return _("demo set") if data.name == DEMO_NAME else data.name


def set_dataset(dataset: Any, name: str, good_class: str | None = None) -> LoadedData:
    """Make ``dataset`` the session's data; drops caches computed from the old one."""
    from soartlab.data import good_index, label_names

    names = label_names(dataset)
    if good_class not in names:
        good_class = names[good_index(names)] if names else ""
    previous = loaded_data()
    version = previous.version + 1 if previous else 1
    data = LoadedData(dataset=dataset, name=name, good_class=good_class, version=version)
    st.session_state[DATASET] = data
    st.session_state.pop(DATA_SOURCE, None)  # an upload says so after (ui.workspace)
    clear_caches()
    return data


def uploaded(
    name: str, data: bytes, label_column: str, shape_text: str, options: dict | None = None
) -> None:
    """The session's data now comes from this upload (after `set_dataset`): said in
    `DATA_SOURCE` with the reading options chosen on the Data page (sheet, ID columns,
    image size), and the bytes left for the workspace to keep (`ui.workspace.save`)."""
    st.session_state[DATA_SOURCE] = {
        "kind": "upload",
        "name": name,
        "label_column": label_column,
        "shape": shape_text,
        "options": {k: v for k, v in (options or {}).items() if v is not None},
    }
    st.session_state[UPLOAD_TO_KEEP] = (name, data)


def set_good_class(good_class: str) -> None:
    data = loaded_data()
    if data is not None and good_class != data.good_class:
        st.session_state[DATASET] = LoadedData(
            data.dataset, data.name, good_class, data.version + 1
        )
        clear_caches()


def ensure_demo_loaded() -> None:
    """Load the demo set on a session's first open, so every page works at once."""
    if DATASET not in st.session_state:
        set_dataset(demo_dataset(), DEMO_NAME)


@st.cache_resource(show_spinner=False)
def demo_dataset() -> Any:
    """The built-in demo set. Shared across sessions on purpose: it is not user data,
    it is deterministic and read-only (an Arrow table), and building it costs a second."""
    from soartlab.demo import make_demo

    return make_demo()


def tuned_transform() -> TunedTransform | None:
    return st.session_state.get(TRANSFORM)


def set_tuned_transform(value: TunedTransform) -> None:
    st.session_state[TRANSFORM] = value


# --- runs ---------------------------------------------------------------------------------


def current_run_dir() -> Path | None:
    value = st.session_state.get(CURRENT_RUN)
    return Path(value) if value else None


def set_current_run(run_dir: Path | str | None) -> None:
    st.session_state[CURRENT_RUN] = str(run_dir) if run_dir else None
    clear_caches()


def current_run() -> Any:
    """The opened run as ``soartlab.workflow.LoadedRun`` (loaded once), or None.

    Raises the engine's ``SoartLabError`` when the run on disk cannot be loaded (for
    example deleted from another tab); callers show it with ``EngineErrors``.
    """
    run_dir = current_run_dir()
    if run_dir is None:
        return None
    cached = st.session_state.get(LOADED_RUN)
    if cached is not None and cached[0] == str(run_dir):
        return cached[1]
    from soartlab.workflow import load_run

    run = load_run(run_dir)
    st.session_state[LOADED_RUN] = (str(run_dir), run)
    return run


def run_store() -> Any:
    """A RunStore under ``SOARTLAB_HOME`` (read on each call, so tests can point it)."""
    from soartlab.runs import RunStore

    return RunStore()


# --- session-scoped caches ---------------------------------------------------------------


def cached(name: str, key: tuple, compute: Any) -> Any:
    """``compute()`` once per ``(name, key)`` in this session; one entry per name.

    A session-scoped cache: only the latest key per name is kept, so memory does not
    grow as the user moves sliders or switches settings.
    """
    slot = CACHE_PREFIX + name
    entry = st.session_state.get(slot)
    if entry is not None and entry[0] == key:
        return entry[1]
    value = compute()
    st.session_state[slot] = (key, value)
    return value


def clear_caches() -> None:
    for slot in [k for k in st.session_state if str(k).startswith(CACHE_PREFIX)]:
        del st.session_state[slot]
    st.session_state.pop(LOADED_RUN, None)
