"""A server a team shares: owned runs (soartlab.access), workspaces that survive a refresh
(soartlab.workspaces) and the training queue (soartlab.jobqueue)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from soartlab.access import AccessError, Actor, actor, admins_from, may_change
from soartlab.errors import SoartLabError
from soartlab.jobqueue import JobQueue, default_limits
from soartlab.record import RunRecord
from soartlab.runs import Run, RunStore
from soartlab.workspaces import WorkspaceStore

ALICE = Actor("alice@example.com")
BOB = Actor("bob@example.com")
ADMIN = Actor("lead@example.com", admin=True)


def owned_copy(tiny_run_copy: Run, owner: str) -> tuple[RunStore, str]:
    record = tiny_run_copy.read_record()
    tiny_run_copy.write_record(replace(record, owner=owner))
    return RunStore(tiny_run_copy.path.parent), tiny_run_copy.run_id


def test_a_record_keeps_its_owner_and_old_records_have_none(tiny_run):
    raw = tiny_run.record.to_dict()
    assert raw["owner"] == ""
    raw["owner"] = "alice@example.com"
    assert RunRecord.from_dict(raw).owner == "alice@example.com"
    del raw["owner"]  # written before owners existed
    assert RunRecord.from_dict(raw).owner == ""


def test_only_the_owner_or_an_admin_renames_or_deletes(tiny_run_copy):
    store, run_id = owned_copy(tiny_run_copy, "alice@example.com")
    with pytest.raises(AccessError, match="bob@example.com.*cannot rename.*alice@example.com's"):
        store.rename(run_id, "bob's name", by=BOB)
    with pytest.raises(AccessError, match="cannot delete"):
        store.delete(run_id, by=BOB)
    assert store.info(run_id).label == "tiny run" and tiny_run_copy.path.is_dir()
    assert store.rename(run_id, "alice's name", by=Actor("ALICE@example.com")).label == (
        "alice's name"
    )
    assert store.rename(run_id, "checked", by=ADMIN).label == "checked"
    assert store.rename(run_id, "local", by=None).label == "local"  # no sign-in: as before
    store.delete(run_id, by=ALICE)
    assert not tiny_run_copy.path.exists()


def test_a_run_made_without_sign_in_is_the_teams_admins_change_it(tiny_run_copy):
    store, run_id = owned_copy(tiny_run_copy, "")
    assert not may_change(ALICE, "") and may_change(ADMIN, "") and may_change(None, "")
    with pytest.raises(AccessError, match="the team's"):
        store.delete(run_id, by=ALICE)
    store.delete(run_id, by=ADMIN)


def test_my_latest_run_is_mine_not_the_newest(tiny_run_copy):
    store, run_id = owned_copy(tiny_run_copy, "alice@example.com")
    assert store.latest_of(ALICE).run_id == run_id
    assert store.latest_of(BOB) is None
    assert store.latest_of(None).run_id == run_id


def test_admins_come_from_the_secrets_and_the_environment(monkeypatch):
    monkeypatch.setenv("SOARTLAB_ADMINS", " Lead@Example.com, ,ops@example.com")
    admins = admins_from(["qa@example.com"])
    assert admins == {"lead@example.com", "ops@example.com", "qa@example.com"}
    assert actor("lead@example.com", admins).admin and not actor("bob@x", admins).admin


def test_a_workspace_keeps_state_and_data_and_opens_only_for_its_owner(tmp_path):
    workspaces = WorkspaceStore(RunStore(tmp_path / "runs"))
    assert workspaces.root == tmp_path / "runs.workspaces"
    mine = workspaces.create(ALICE)
    mine.write_state({"soart_current_run": "x", "data": {"kind": "upload", "name": "lot.csv"}})
    mine.save_data("../../lot.CSV", b"label,f1\ngood,1\n")
    again = workspaces.open(mine.id, Actor("alice@example.com"))
    assert again.read_state()["data"]["name"] == "lot.csv"
    assert again.data_file() == mine.path / "data.csv"  # only the suffix of the name is used
    assert again.data_file().read_bytes().startswith(b"label")
    with pytest.raises(AccessError, match="another user"):
        workspaces.open(mine.id, BOB)
    with pytest.raises(AccessError, match="another user"):
        workspaces.open(mine.id, None)
    local = workspaces.create(None)
    with pytest.raises(AccessError, match="without sign-in"):
        workspaces.open(local.id, ALICE)
    assert workspaces.latest_of(ALICE).id == mine.id and workspaces.latest_of(BOB) is None
    for bad in ("../runs", "x" * 16 + "/..", "", "short"):
        with pytest.raises(SoartLabError, match="not valid"):
            workspaces.open(bad, ALICE)
    with pytest.raises(SoartLabError, match="No workspace"):
        workspaces.open("A" * 16, ALICE)
    with pytest.raises(SoartLabError, match="unsupported type"):
        mine.save_data("lot.exe", b"")
    assert json.loads(mine.state_path.read_text())["owner"] == "alice@example.com"


def test_the_queue_runs_at_most_its_limit_and_tells_positions():
    queue = JobQueue({"cpu": 2, "cuda": 0}, cores=4, load=lambda: 0.0)
    started: list[int] = []
    tickets = [queue.submit("cpu", lambda n=n: started.append(n)) for n in range(4)]
    assert started == [0, 1]
    assert [queue.position(t) for t in tickets] == [0, 0, 1, 2]
    assert queue.running() == 2 and queue.threads() == 2
    assert queue.cancel(tickets[3]) and not queue.cancel(tickets[0])
    queue.done(tickets[0])
    assert started == [0, 1, 2] and queue.position(tickets[2]) == 0
    queue.done(tickets[1])
    queue.done(tickets[2])
    assert started == [0, 1, 2] and queue.running() == 0 and queue.threads() == 4
    with pytest.raises(ValueError, match="No slots for 'cuda'"):
        queue.submit("cuda", lambda: None)


def test_a_job_takes_no_more_threads_than_other_programs_leave_free():
    load = [0.0]
    queue = JobQueue({"cpu": 4, "cuda": 0}, cores=8, load=lambda: load[0])
    queue.submit("cpu", lambda: None)
    assert queue.threads() == 8  # alone on a quiet machine: every core
    load[0] = 8 + 5.0  # its own 8 threads and 5 busy cores of other programs
    assert queue.threads() == 3
    load[0] = 40.0  # a machine far over-committed: one thread
    assert queue.threads() == 1
    queue.submit("cpu", lambda: None)
    load[0] = 8.0  # two jobs at 4 threads each, nothing else
    assert queue.threads() == 4


def test_the_limit_follows_the_machine(monkeypatch):
    monkeypatch.delenv("SOARTLAB_MAX_JOBS", raising=False)
    assert default_limits(cores=2, gpus=0) == {"cpu": 2, "cuda": 0}
    assert default_limits(cores=16, gpus=1) == {"cpu": 16, "cuda": 1}
    monkeypatch.setenv("SOARTLAB_MAX_JOBS", "3")
    assert default_limits(cores=16, gpus=0)["cpu"] == 3


def test_a_queued_training_job_waits_and_stops_without_starting(demo_set, tmp_path):
    from soartlab.config import TrainConfig
    from soartlab.ui.jobs import TrainingJob

    queue = JobQueue({"cpu": 1, "cuda": 0}, cores=2)
    first = queue.submit("cpu", lambda: None)  # holds the only slot until done
    job = TrainingJob(
        demo_set, TrainConfig(epochs=1, device="cpu"), store=RunStore(tmp_path), queue=queue
    )
    job.start()
    snap = job.snapshot()
    assert snap.status == "queued" and snap.queue_position == 1 and job.is_running()
    assert "position 1" in job.summary()
    job.stop()
    assert job.wait(5)
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.run_dir is None
    assert snap.message == "stopped before it started"
    queue.done(first)
    time.sleep(0.1)
    assert not any(tmp_path.iterdir())  # it never trained


def test_a_new_session_on_the_same_workspace_gets_its_state_and_its_job(
    demo_set, tmp_path, monkeypatch
):
    """What a browser refresh does: a new session with ?ws= of the old one. The tuned
    transform, the good class and the settings come back; the Train page finds the
    workspace's job (here waiting in a full queue) with its Stop button."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from soartlab.config import TrainConfig
    from soartlab.ui import state
    from soartlab.ui.jobs import JOBS, TrainingJob

    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "runs"))
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    first = AppTest.from_file(app, default_timeout=60)
    first.run()
    ws_id = first.query_params["ws"]
    ws_id = ws_id[0] if isinstance(ws_id, list) else ws_id
    # What the first session's runs saved (AppTest runs app.py only on a session's first
    # run, so the saving is checked in the browser: tests/test_browser_team.py)
    workspace = WorkspaceStore(RunStore(tmp_path / "runs")).open(ws_id, None)
    saved = workspace.read_state()
    assert saved["data"] == {"kind": "demo", "good_class": "good"}
    saved["transform"] = {"scale": 0.7, "offset": -0.3, "floor": 0.1, "p_v": 3.0, "p_m": 1.0}
    saved["settings"] = {"_keep_train_label": "lot 7 run"}
    workspace.write_state(saved)
    queue = JobQueue({"cpu": 1, "cuda": 0}, cores=1)
    queue.submit("cpu", lambda: None)  # the machine is busy: the job waits
    job = TrainingJob(
        demo_set, TrainConfig(epochs=1, device="cpu"), store=RunStore(tmp_path), queue=queue
    )
    JOBS.put(ws_id, job.start())

    second = AppTest.from_file(app, default_timeout=60)
    second.query_params["ws"] = ws_id
    second.run()
    second.switch_page("pages/train.py").run()
    assert not second.exception, second.exception
    tuned = second.session_state[state.TRANSFORM]
    assert (tuned.transform.scale, tuned.transform.floor, tuned.p_v) == (0.7, 0.1, 3)
    assert second.session_state[state.DATASET].name == "demo set"
    assert [t.value for t in second.text_input if t.key == "train_label"] == ["lot 7 run"]
    assert any(b.label == "Stop" for b in second.button)
    job.stop()

    other = AppTest.from_file(app, default_timeout=60)
    other.run()
    assert state.TRANSFORM not in other.session_state
    assert other.query_params["ws"] != first.query_params["ws"]  # a new visit: a new workspace


def test_an_uploaded_file_is_kept_in_the_workspace_for_a_refresh(tmp_path, monkeypatch):
    """The Data page's upload is saved in the workspace; a new session on the same ?ws=
    loads that file again (not the demo set)."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from soartlab.demo import write_demo
    from soartlab.ui import state

    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "runs"))
    lot = tmp_path / "lot7.csv"
    write_demo(lot, n_samples=80, seed=3)
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    first = AppTest.from_file(app, default_timeout=60)
    first.session_state[state.PENDING_UPLOAD] = ("lot7.csv", lot.read_bytes(), "label", "")
    first.switch_page("pages/data.py").run()  # its first run: through app.py, then saved
    assert not first.exception, first.exception
    assert first.session_state[state.DATASET].name == "lot7.csv"
    ws_id = first.query_params["ws"]
    ws_id = ws_id[0] if isinstance(ws_id, list) else ws_id

    second = AppTest.from_file(app, default_timeout=60)
    second.query_params["ws"] = ws_id
    second.run()
    data = second.session_state[state.DATASET]
    assert (data.name, len(data.dataset)) == ("lot7.csv", 80)


def test_an_uploaded_workbook_and_its_reading_options_survive_a_refresh(tmp_path, monkeypatch):
    """An .xlsx (the uploader takes it) is kept in the workspace with the sheet chosen on
    the Data page; a refresh reads the same sheet again."""
    from pathlib import Path

    import pandas as pd
    from streamlit.testing.v1 import AppTest

    from soartlab.ui import state

    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "runs"))
    book = tmp_path / "lot.xlsx"
    table = pd.DataFrame({"label": ["good", "dent"] * 10, "f1": range(20), "f2": range(20)})
    with pd.ExcelWriter(book) as writer:
        pd.DataFrame({"note": ["cover sheet"]}).to_excel(writer, sheet_name="cover", index=False)
        table.to_excel(writer, sheet_name="lot", index=False)
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    first = AppTest.from_file(app, default_timeout=60)
    pending = ("lot.xlsx", book.read_bytes(), "label", "", {"sheet": "lot"})
    first.session_state[state.PENDING_UPLOAD] = pending
    first.switch_page("pages/data.py").run()
    assert not first.exception, first.exception
    ws_id = first.query_params["ws"]
    ws_id = ws_id[0] if isinstance(ws_id, list) else ws_id

    second = AppTest.from_file(app, default_timeout=60)
    second.query_params["ws"] = ws_id
    second.run()
    data = second.session_state[state.DATASET]
    assert (data.name, len(data.dataset)) == ("lot.xlsx", 20)
