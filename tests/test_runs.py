import json
import re
from pathlib import Path

import pytest

from soartlab.errors import CheckpointError
from soartlab.runs import RunStore, clean_label, read_run_json, write_run_json

ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


def test_home_from_argument_env_or_default(tmp_path, monkeypatch):
    assert RunStore(tmp_path).home == tmp_path
    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "env"))
    assert RunStore().home == tmp_path / "env"
    monkeypatch.delenv("SOARTLAB_HOME")
    assert RunStore().home == Path("~/.soartlab/runs").expanduser()


def test_home_is_created_on_demand(store):
    assert not store.home.exists()
    assert store.list() == []
    run_dir = store.new_run("first")
    assert store.home.is_dir() and run_dir.parent == store.home


def test_new_run_has_a_server_made_id_and_run_json(store):
    run_dir = store.new_run("batch 7 — 検査")
    assert ID.match(run_dir.name)
    data = read_run_json(run_dir)
    assert data["run_id"] == run_dir.name
    assert data["label"] == "batch 7 — 検査"
    assert data["status"] == "created"
    assert data["created"][:10].replace("-", "") == run_dir.name[:8]


def test_path_like_label_stays_a_label(store):
    run_dir = store.new_run("../../etc")
    assert run_dir.parent == store.home and ID.match(run_dir.name)
    assert read_run_json(run_dir)["label"] == "../../etc"
    assert sorted(p.name for p in store.home.iterdir()) == [run_dir.name]
    assert not (store.home.parent / "etc").exists()


def test_labels_are_cleaned():
    assert clean_label("a\nb\tc\x00d") == "a b c d"
    assert clean_label("  x  ") == "x"
    assert clean_label("y" * 500) == "y" * 100
    assert clean_label(None) == ""
    assert clean_label(42) == "42"


def test_list_is_newest_first_and_skips_foreign_folders(store):
    first = store.new_run("one")
    second = store.new_run("two")
    data = read_run_json(first)
    data["created"] = "2001-01-01T00:00:00+00:00"
    write_run_json(first, data)
    (store.home / "notes").mkdir()
    (store.home / "20990101-000000-abcdef").mkdir()  # id-shaped, no run.json
    broken = store.home / "20990101-000000-123456"
    broken.mkdir()
    (broken / "run.json").write_text("{broken", encoding="utf-8")
    (store.home / "20990101-000000-aaaaaa").write_text("a file", encoding="utf-8")

    infos = store.list()
    assert [info.path for info in infos] == [second, first]
    assert [info.label for info in infos] == ["two", "one"]


def test_run_info_reads_trainer_fields(store):
    run_dir = store.new_run("trained")
    data = read_run_json(run_dir)
    data.update(
        status="finished",
        loss="soart3",
        metrics={"accuracy": 0.9, "escape_rate": 0.1, "overkill_rate": 0.0},
    )
    write_run_json(run_dir, data)
    [info] = store.list()
    assert info.run_id == run_dir.name
    assert info.status == "finished" and info.loss == "soart3"
    assert info.metrics["accuracy"] == 0.9
    assert store.info(run_dir.name) == info


def test_open_validates_ids(store):
    run_dir = store.new_run()
    assert store.open(run_dir.name) == run_dir
    for bad in [
        "../x",
        "..",
        "",
        "/etc",
        run_dir.name + "\n",
        "20250101-000000-ABCDEF",
        run_dir.name + "/..",
        None,
        5,
    ]:
        with pytest.raises(CheckpointError, match="not valid"):
            store.open(bad)
    with pytest.raises(CheckpointError, match="No run '20000101-000000-000000'"):
        store.open("20000101-000000-000000")


def test_symlinked_run_is_refused(store, tmp_path):
    store.new_run()
    outside = tmp_path / "outside"
    outside.mkdir()
    write_run_json(outside, {"label": "elsewhere"})
    link = store.home / "20250101-000000-abcdef"
    link.symlink_to(outside)
    with pytest.raises(CheckpointError, match="No run"):
        store.open(link.name)
    with pytest.raises(CheckpointError):
        store.delete(link.name)
    assert (outside / "run.json").exists()
    assert all(info.label != "elsewhere" for info in store.list())


def test_rename_changes_only_the_label(store):
    run_dir = store.new_run("old")
    (run_dir / "model.pth").write_bytes(b"weights")
    before = read_run_json(run_dir)
    info = store.rename(run_dir.name, "../new\nname")
    after = read_run_json(run_dir)
    assert info.label == after["label"] == "../new name"
    assert {k: v for k, v in after.items() if k != "label"} == {
        k: v for k, v in before.items() if k != "label"
    }
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.pth", "run.json"]
    assert (run_dir / "model.pth").read_bytes() == b"weights"


def test_delete_removes_only_that_run(store):
    keep = store.new_run("keep")
    gone = store.new_run("gone")
    (gone / "model.pth").write_bytes(b"x")
    store.delete(gone.name)
    assert not gone.exists() and keep.exists()
    assert [info.label for info in store.list()] == ["keep"]
    with pytest.raises(CheckpointError, match="not valid"):
        store.delete("..")
    assert store.home.exists()


def test_read_run_json_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="run.json' does not exist"):
        read_run_json(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps([1, 2]), encoding="utf-8")
    with pytest.raises(CheckpointError, match="JSON object"):
        read_run_json(tmp_path)
    (tmp_path / "run.json").write_bytes(b"\xff\xfe")
    with pytest.raises(CheckpointError, match="not valid UTF-8 JSON"):
        read_run_json(tmp_path)
