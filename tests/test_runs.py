"""Run folders (`soartlab.runs`): `Run` owns a folder's files, `RunStore` keeps the folders.

Records come from the session's tiny trained run (`tiny_run`, conftest.py): written with
`Run.write_record` into folders from `RunStore.new_run`, or the whole folder copied
(`tiny_run_copy`) where a test needs the weights too.
"""

import json
import os
import re
import threading
import zipfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

import soartlab.runs as runs
from soartlab.checkpoint import checkpoint_bytes, load_checkpoint
from soartlab.errors import CheckpointError
from soartlab.record import RunRecord
from soartlab.runs import (
    BUNDLE_FILES,
    CALIBRATION_FILE,
    PTH_FILE,
    REFERENCES_FILE,
    RUN_JSON,
    SAFETENSORS_FILE,
    STATE_FILE,
    Run,
    RunInfo,
    RunStore,
    clean_label,
    read_bundle,
)

ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
TRAINED_FILES = sorted([PTH_FILE, SAFETENSORS_FILE, REFERENCES_FILE, RUN_JSON])
# a run saved with its calibration (workflow.save_run after workflow.calibrate)
SAVED_FILES = sorted([*TRAINED_FILES, CALIBRATION_FILE])


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


def write_record(store, record, **changes) -> Run:
    """A new run in ``store`` holding only ``record`` (with ``changes``) as its run.json."""
    run = store.new_run()
    run.write_record(replace(record, run_id=run.run_id, **changes))
    return run


def write_trained(run, tiny_run, record=None) -> RunRecord:
    """`Run.write` as the Train page calls it: weights, references, record."""
    return run.write(
        record or tiny_run.record,
        lambda final: checkpoint_bytes(tiny_run.result.model, final.to_dict()),
        tiny_run.run.references_path.read_bytes(),
    )


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def scan_within(store, seconds=20):
    """`store.scan()` in a thread: (result or None if it was still running after ``seconds``)."""
    found = {}
    thread = threading.Thread(target=lambda: found.update(result=store.scan()), daemon=True)
    thread.start()
    thread.join(seconds)
    return found.get("result")


# --- the store's home --------------------------------------------------------------------


def test_home_from_argument_env_or_default(tmp_path, monkeypatch):
    assert RunStore(tmp_path).home == tmp_path
    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "env"))
    assert RunStore().home == tmp_path / "env"
    assert RunStore(tmp_path / "arg").home == tmp_path / "arg"  # the argument wins
    monkeypatch.delenv("SOARTLAB_HOME")
    assert RunStore().home == Path("~/.soartlab/runs").expanduser()


def test_home_is_created_on_demand(store):
    assert not store.home.exists()
    assert store.list() == []
    assert store.scan() == ([], [])
    run = store.new_run()
    assert store.home.is_dir() and run.path.parent == store.home


# --- new runs and writing them -----------------------------------------------------------


def test_new_run_is_an_empty_reserved_folder_with_a_server_made_id(store):
    before = datetime.now().strftime("%Y%m%d")
    run = store.new_run()
    after = datetime.now().strftime("%Y%m%d")
    assert isinstance(run, Run) and ID.match(run.run_id)
    assert run.run_id[:8] in (before, after)
    assert run.path == store.home / run.run_id and run.path.is_dir()
    assert list(run.path.iterdir()) == []  # no placeholder record, no label
    assert not run.is_trained()
    # being written: neither listed nor reported as a problem
    assert store.scan() == ([], [])
    assert store.new_run().run_id != run.run_id


def test_write_fills_in_the_id_time_and_a_clean_label(store, tiny_run):
    run = store.new_run()
    given = replace(tiny_run.record, run_id="", created="", label="batch 7\n— 検査\x00")
    written = write_trained(run, tiny_run, given)
    assert written.run_id == run.run_id
    assert written.label == "batch 7 — 検査"
    assert datetime.fromisoformat(written.created).tzinfo is not None
    assert sorted(file_bytes(run.path)) == TRAINED_FILES
    assert run.is_trained() and run.weights_path == run.path / SAFETENSORS_FILE
    assert run.read_record() == written
    # the weights carry the record as written, in the safetensors header
    _, meta = load_checkpoint(run.weights_path)
    assert RunRecord.from_dict(meta) == written
    assert run.read_references() == tiny_run.run.references_path.read_bytes()


def test_write_writes_the_record_last(store, tiny_run, monkeypatch):
    order = []
    real_bytes, real_json = runs.atomic_write_bytes, runs.atomic_write_json

    def write_bytes(path, data):
        order.append(Path(path).name)
        return real_bytes(path, data)

    def write_json(path, obj):
        order.append(Path(path).name)
        return real_json(path, obj)

    monkeypatch.setattr(runs, "atomic_write_bytes", write_bytes)
    monkeypatch.setattr(runs, "atomic_write_json", write_json)
    write_trained(store.new_run(), tiny_run)
    assert sorted(order) == TRAINED_FILES
    assert order[-1] == RUN_JSON


def test_a_write_that_fails_leaves_no_record(store, tiny_run):
    run = store.new_run()

    def weights_fail(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.write(tiny_run.record, weights_fail, b"refs")
    assert not run.record_path.exists()
    assert store.scan() == ([], [])  # a folder without a record is one being written


def test_path_like_label_stays_a_label(store, tiny_run):
    run = store.new_run()
    write_trained(run, tiny_run, tiny_run.record.with_label("../../etc"))
    assert run.path.parent == store.home and ID.match(run.run_id)
    assert run.read_record().label == "../../etc"
    [info] = store.list()
    assert info.label == "../../etc" and info.path == run.path
    assert sorted(p.name for p in store.home.iterdir()) == [run.run_id]
    assert not (store.home.parent / "etc").exists()
    assert not (store.home.parent.parent / "etc").exists()


def test_labels_are_cleaned():
    assert clean_label("a\nb\tc\x00d") == "a b c d"
    assert clean_label("  x  ") == "x"
    assert clean_label("y" * 500) == "y" * 100
    assert clean_label(None) == ""
    assert clean_label(42) == "42"


# --- listing -----------------------------------------------------------------------------


def test_list_is_newest_first_and_skips_foreign_folders(store, tiny_run):
    old = write_record(store, tiny_run.record, label="old", created="2001-01-01T00:00:00+00:00")
    new = write_record(store, tiny_run.record, label="new", created="2025-06-01T12:00:00+09:00")
    undated = write_record(store, tiny_run.record, label="undated", created="")
    store.new_run()  # reserved, being written
    (store.home / "notes").mkdir()
    (store.home / "notes" / RUN_JSON).write_text("{broken", encoding="utf-8")
    (store.home / "20990101-000000-abcdef").mkdir()  # id-shaped, no record
    (store.home / "20990101-000000-aaaaaa").write_text("a file", encoding="utf-8")
    (store.home / RUN_JSON).write_text("{}", encoding="utf-8")

    infos, problems = store.scan()
    assert [info.path for info in infos] == [new.path, old.path, undated.path]
    assert [info.label for info in infos] == ["new", "old", "undated"]
    assert problems == []
    assert store.list() == infos


def test_run_info_reads_the_record(tiny_run_copy, tiny_run):
    store = RunStore(tiny_run_copy.path.parent)
    [info] = store.list()
    record = tiny_run.record
    assert info == RunInfo.of(tiny_run_copy)
    assert info.run_id == tiny_run_copy.run_id and info.path == tiny_run_copy.path
    assert info.label == "tiny run" and info.created == record.created
    assert info.loss == "soart3" and info.status == "finished"
    assert info.metrics == record.metrics and 0 <= info.metrics["accuracy"] <= 1
    assert info.history == record.history and len(info.history) == tiny_run.config.epochs
    assert store.info(info.run_id) == info


def deep_json(depth):
    return ('{"metrics": ' + "[" * depth + "]" * depth + "}").encode()


def high_accuracy(record):
    raw = record.to_dict()
    raw["metrics"] = {**raw["metrics"], "accuracy": "high"}
    return json.dumps(raw).encode()


def record_as_list(record):
    return json.dumps([record.to_dict()]).encode()


@pytest.mark.parametrize(
    ("make", "why"),
    [
        pytest.param(high_accuracy, "metrics.accuracy", id="accuracy-high"),
        pytest.param(lambda r: deep_json(100_000), "nested too deeply", id="100000-deep"),
        pytest.param(lambda r: b"{broken", "not valid UTF-8 JSON", id="not-json"),
        pytest.param(lambda r: b"\xff\xfe{}", "not valid UTF-8 JSON", id="not-utf8"),
        pytest.param(lambda r: b"", "not valid UTF-8 JSON", id="empty"),
        pytest.param(record_as_list, "JSON object", id="a-list"),
        pytest.param(lambda r: b"{}", "field '", id="empty-object"),
    ],
)
def test_unreadable_runs_are_reported_and_do_not_break_the_list(store, tiny_run, make, why):
    good = write_record(store, tiny_run.record, label="good")
    bad = store.new_run()
    bad.record_path.write_bytes(make(tiny_run.record))

    infos, problems = store.scan()
    assert [info.path for info in infos] == [good.path]
    assert len(problems) == 1
    assert problems[0].startswith(f"{bad.run_id}: ") and why in problems[0]
    assert store.list() == infos
    with pytest.raises(CheckpointError, match=re.escape(why)):
        store.info(bad.run_id)


def test_a_record_that_is_a_folder_is_reported(store, tiny_run):
    write_record(store, tiny_run.record)
    bad = store.new_run()
    bad.record_path.mkdir()
    infos, problems = store.scan()
    assert len(infos) == 1
    assert problems == [f"{bad.run_id}: '{bad.record_path}' is not a regular file."]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_record_is_reported_not_hung_on(store, tiny_run):
    good = write_record(store, tiny_run.record)
    bad = store.new_run()
    os.mkfifo(bad.record_path)
    try:
        scanned = scan_within(store)
    finally:
        # a scan stuck in open() on the FIFO returns once a writer comes and goes
        try:
            os.close(os.open(bad.record_path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader waiting: nothing was stuck
    assert scanned is not None, "scan() hung opening a FIFO named run.json"
    infos, problems = scanned
    assert [info.path for info in infos] == [good.path]
    assert len(problems) == 1 and problems[0].startswith(f"{bad.run_id}: ")
    assert "not a regular file" in problems[0]
    with pytest.raises(CheckpointError, match="not a regular file"):
        bad.read_record()


# --- opening, renaming, deleting ---------------------------------------------------------


def test_open_validates_ids(store, tiny_run):
    run = write_record(store, tiny_run.record)
    assert store.open(run.run_id) == run
    for bad in [
        "../x",
        "..",
        "",
        "/etc",
        run.run_id + "\n",
        "20250101-000000-ABCDEF",
        run.run_id + "/..",
        None,
        5,
    ]:
        with pytest.raises(CheckpointError, match="not valid"):
            store.open(bad)
    with pytest.raises(CheckpointError, match="No run '20000101-000000-000000'"):
        store.open("20000101-000000-000000")


def test_symlinked_run_is_refused(store, tiny_run, tmp_path):
    write_record(store, tiny_run.record, label="inside")
    outside = Run(tmp_path / "outside")
    outside.path.mkdir()
    outside.write_record(tiny_run.record.with_label("elsewhere"))
    link = store.home / "20250101-000000-abcdef"
    link.symlink_to(outside.path)
    with pytest.raises(CheckpointError, match="No run"):
        store.open(link.name)
    with pytest.raises(CheckpointError):
        store.rename(link.name, "hijacked")
    with pytest.raises(CheckpointError):
        store.delete(link.name)
    assert outside.read_record().label == "elsewhere"
    infos, problems = store.scan()
    assert [info.label for info in infos] == ["inside"] and problems == []


def test_rename_changes_only_the_label(tiny_run_copy):
    store = RunStore(tiny_run_copy.path.parent)
    before = file_bytes(tiny_run_copy.path)
    record_before = tiny_run_copy.read_json()

    info = store.rename(tiny_run_copy.run_id, "../new\nname")

    after = file_bytes(tiny_run_copy.path)
    record_after = tiny_run_copy.read_json()
    assert info.label == record_after["label"] == "../new name"
    assert {k: v for k, v in record_after.items() if k != "label"} == {
        k: v for k, v in record_before.items() if k != "label"
    }
    assert sorted(after) == sorted(before) == SAVED_FILES  # no temp files left
    assert {n: b for n, b in after.items() if n != RUN_JSON} == {
        n: b for n, b in before.items() if n != RUN_JSON
    }
    assert [i.label for i in store.list()] == ["../new name"]
    assert sorted(p.name for p in store.home.iterdir()) == [tiny_run_copy.run_id]


def test_rename_of_an_unreadable_run_changes_nothing(tiny_run_copy, tiny_run):
    store = RunStore(tiny_run_copy.path.parent)
    tiny_run_copy.record_path.write_bytes(high_accuracy(tiny_run.record))
    before = file_bytes(tiny_run_copy.path)
    with pytest.raises(CheckpointError, match="metrics.accuracy"):
        store.rename(tiny_run_copy.run_id, "new")
    assert file_bytes(tiny_run_copy.path) == before


def schema_1(raw):
    """A schema-2 record's JSON form as SOART Lab wrote it before schema_version existed."""
    raw = dict(raw)
    del raw["schema_version"], raw["data"]
    raw["format"] = "soartlab-run/1"
    raw["config"] = {**raw["config"], "transform": raw["transform"]}
    raw["loss"] = raw["config"]["loss"]
    return raw


def test_rename_keeps_a_schema_1_run_readable(tiny_run_copy):
    store = RunStore(tiny_run_copy.path.parent)
    runs.atomic_write_json(tiny_run_copy.record_path, schema_1(tiny_run_copy.read_json()))
    assert tiny_run_copy.read_record().data is None
    store.rename(tiny_run_copy.run_id, "renamed")
    assert tiny_run_copy.read_record().label == "renamed"


def test_delete_removes_only_that_run(store, tiny_run):
    keep = write_record(store, tiny_run.record, label="keep")
    gone = store.new_run()
    write_trained(gone, tiny_run, tiny_run.record.with_label("gone"))
    store.delete(gone.run_id)
    assert not gone.path.exists() and keep.path.exists()
    assert [info.label for info in store.list()] == ["keep"]
    with pytest.raises(CheckpointError, match="not valid"):
        store.delete("..")
    with pytest.raises(CheckpointError, match="No run"):
        store.delete(gone.run_id)
    assert store.home.exists() and keep.record_path.exists()


# --- reading one run ---------------------------------------------------------------------


def test_read_json_errors_name_the_file(tmp_path):
    run = Run(tmp_path)
    with pytest.raises(CheckpointError, match=f"{RUN_JSON}' does not exist"):
        run.read_json()
    run.record_path.write_text(json.dumps([1, 2]), encoding="utf-8")
    with pytest.raises(CheckpointError, match="JSON object"):
        run.read_json()
    run.record_path.write_bytes(b"\xff\xfe")
    with pytest.raises(CheckpointError, match=f"{RUN_JSON}' is not valid UTF-8 JSON"):
        run.read_record()


def test_run_paths_are_the_module_file_names(tmp_path):
    run = Run(tmp_path)
    assert run.record_path == tmp_path / RUN_JSON
    assert run.pth_path == tmp_path / PTH_FILE
    assert run.references_path == tmp_path / REFERENCES_FILE
    assert run.state_path == tmp_path / STATE_FILE
    assert run.weights_path == tmp_path / PTH_FILE  # no safetensors yet
    (tmp_path / SAFETENSORS_FILE).write_bytes(b"x")
    assert run.weights_path == tmp_path / SAFETENSORS_FILE
    assert run.read_references() is None


# --- bundles -----------------------------------------------------------------------------


def test_bundle_holds_exactly_the_bundle_files(tiny_run_copy, tmp_path):
    tiny_run_copy.state_path.write_bytes(b"resume state: not for downloads")
    data = tiny_run_copy.bundle()
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(data)
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == sorted(BUNDLE_FILES)
    assert PTH_FILE not in BUNDLE_FILES and STATE_FILE not in BUNDLE_FILES
    files = read_bundle(bundle, max_bytes=10**9)
    assert files == {name: (tiny_run_copy.path / name).read_bytes() for name in BUNDLE_FILES}


def test_read_bundle_refuses_what_is_not_a_bundle(tiny_run_copy, tmp_path):
    partial = tmp_path / "partial.zip"
    with zipfile.ZipFile(partial, "w") as archive:
        archive.write(tiny_run_copy.weights_path, arcname=SAFETENSORS_FILE)
    with pytest.raises(CheckpointError, match=f"{RUN_JSON} missing"):
        read_bundle(partial, max_bytes=10**9)
    whole = tmp_path / "whole.zip"
    whole.write_bytes(tiny_run_copy.bundle())
    with pytest.raises(CheckpointError, match="uncompressed; at most 1,000"):
        read_bundle(whole, max_bytes=1000)
    not_zip = tmp_path / "bundle.zip"
    not_zip.write_bytes(b"PK not really")
    with pytest.raises(CheckpointError, match="not a valid zip"):
        read_bundle(not_zip, max_bytes=10**9)


def bundle_with(tmp_path, tiny_run_copy, name, data) -> Path:
    """The tiny run's bundle with member ``name`` replaced by ``data`` (deflated)."""
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in BUNDLE_FILES:
            content = data if member == name else (tiny_run_copy.path / member).read_bytes()
            archive.writestr(member, content)
    return path


def test_a_bundle_member_over_its_cap_is_refused_before_reading(
    tiny_run_copy, tmp_path, monkeypatch
):
    # 17 MiB of spaces around an object: a run.json that compresses to a few kB
    bomb = bundle_with(tmp_path, tiny_run_copy, RUN_JSON, b"{" + b" " * (17 * 2**20) + b"}")
    with zipfile.ZipFile(bomb) as archive:
        assert archive.getinfo(RUN_JSON).compress_size < 100_000
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a: pytest.fail("member was read"))
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a: pytest.fail("member was opened"))
    with pytest.raises(CheckpointError, match=r"run.json declares 17,825,794 bytes"):
        read_bundle(bomb, max_bytes=10**10)


def test_a_bundle_member_with_a_bomb_ratio_is_refused(tiny_run_copy, tmp_path):
    zeros = bundle_with(tmp_path, tiny_run_copy, SAFETENSORS_FILE, bytes(4 * 2**20))
    with pytest.raises(CheckpointError, match=r"model.safetensors declares 4,194,304 bytes.*100:1"):
        read_bundle(zeros, max_bytes=10**10)


def test_a_bundle_member_larger_than_declared_is_refused(tiny_run_copy, tmp_path, monkeypatch):
    # zipfile stops at the declared size and then finds the CRC wrong; the bounded read
    # in read_bundle would refuse the member even if it did not
    path = bundle_with(tmp_path, tiny_run_copy, RUN_JSON, b"{}" + b" " * 5000)
    real_infolist = zipfile.ZipFile.infolist

    def understated(archive):  # a directory that lies about run.json's size
        infos = real_infolist(archive)
        for info in infos:
            if info.filename == RUN_JSON:
                info.file_size = 100
        return infos

    monkeypatch.setattr(zipfile.ZipFile, "infolist", understated)
    monkeypatch.setitem(runs.BUNDLE_CAPS, RUN_JSON, 1000)
    with pytest.raises(CheckpointError, match="run.json"):
        read_bundle(path, max_bytes=10**10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_references_file_that_is_a_fifo_is_refused_not_read(tiny_run_copy):
    tiny_run_copy.references_path.unlink()
    os.mkfifo(tiny_run_copy.references_path)
    with pytest.raises(CheckpointError, match="references.safetensors' is not a regular file"):
        tiny_run_copy.read_references()


def test_a_references_file_over_its_cap_is_refused(tiny_run_copy, monkeypatch):
    monkeypatch.setattr(runs, "MAX_REFERENCES_BYTES", 1000)
    with pytest.raises(CheckpointError, match="references.safetensors' is larger than 1,000"):
        tiny_run_copy.read_references()


def test_check_writable_finds_a_file_or_a_read_only_folder_before_work(tmp_path, unwritable_folder):
    Run(tmp_path / "new" / "run").check_writable()  # missing folders are made later
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a file; a run needs a folder"):
        Run(tmp_path / "file").check_writable()
    with pytest.raises(CheckpointError, match="is not a folder"):
        Run(tmp_path / "file" / "run").check_writable()
    with pytest.raises(CheckpointError, match="Cannot write in"):
        Run(unwritable_folder / "run").check_writable()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "read-only"]
