"""Run folders: the one module that knows which files a run folder holds.

A run folder holds the weights twice (``model.pth``, the plain state_dict the article's
classes load, and ``model.safetensors``), the reference embeddings of the training split,
the run record (``run.json``, see `soartlab.record`) and, while training from the command
line, a per-epoch training state for ``--resume``. `Run` owns these files: nothing else
names a file inside a run folder. `RunStore` keeps run folders under a home folder.

Folder names in a store are run ids made here (``YYYYmmdd-HHMMSS-<6 hex>``), never anything
a user typed: a label such as ``"../../etc"`` is stored in the record and shown, nothing more.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from soartlab.access import Actor, check_may_change, owns
from soartlab.errors import CheckpointError
from soartlab.files import (
    MAX_CHECKPOINT_BYTES,
    MAX_JSON_BYTES,
    atomic_write_bytes,
    atomic_write_json,
    check_writable_folder,
    read_json_object,
    read_regular_file,
)
from soartlab.io import Limits
from soartlab.record import RunRecord
from soartlab.training import Baselines

RUN_JSON = "run.json"
PTH_FILE = "model.pth"
SAFETENSORS_FILE = "model.safetensors"
REFERENCES_FILE = "references.safetensors"
STATE_FILE = "train_state.pt"
# The held-out parts' decision scores and the training inputs' statistics (lot checks),
# see workflow.Calibration: what predict needs besides the model and references.
CALIBRATION_FILE = "calibration.safetensors"
# What a downloaded bundle holds: everything needed to predict, nothing to resume.
BUNDLE_FILES = (SAFETENSORS_FILE, REFERENCES_FILE, RUN_JSON, CALIBRATION_FILE)

# references.safetensors: (N_train, e) float32 embeddings and labels; 1 GiB is 2 million
# 128-wide embeddings, ten times the most rows a data file may hold
MAX_REFERENCES_BYTES = 1024**3
# The most each bundle member may unpack to, checked before it is read.
BUNDLE_CAPS = {
    SAFETENSORS_FILE: MAX_CHECKPOINT_BYTES,
    REFERENCES_FILE: MAX_REFERENCES_BYTES,
    RUN_JSON: MAX_JSON_BYTES,
    CALIBRATION_FILE: MAX_REFERENCES_BYTES,
}
_RATIO_CHECK_BYTES = 1 << 20  # a small member may compress very well without being a bomb

RUN_ID_RE = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")  # always used with fullmatch
MAX_LABEL_CHARS = 100
DEFAULT_HOME = Path("~/.soartlab/runs")
HOME_ENV = "SOARTLAB_HOME"


def clean_label(label: Any) -> str:
    """Printable single-line text of at most `MAX_LABEL_CHARS` characters."""
    text = "" if label is None else str(label)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:MAX_LABEL_CHARS]


class Run:
    """One run folder and its files."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def record_path(self) -> Path:
        return self.path / RUN_JSON

    @property
    def pth_path(self) -> Path:
        """The plain state_dict, for downloads and the article's own classes."""
        return self.path / PTH_FILE

    @property
    def weights_path(self) -> Path:
        """The weights to load: safetensors when present (it carries the record too)."""
        safetensors = self.path / SAFETENSORS_FILE
        return safetensors if safetensors.is_file() else self.pth_path

    @property
    def references_path(self) -> Path:
        return self.path / REFERENCES_FILE

    @property
    def calibration_path(self) -> Path:
        return self.path / CALIBRATION_FILE

    @property
    def state_path(self) -> Path:
        """The per-epoch training state that ``--resume auto`` continues from."""
        return self.path / STATE_FILE

    def is_trained(self) -> bool:
        return self.record_path.is_file() and self.weights_path.is_file()

    def read_json(self) -> dict[str, Any]:
        """The record as stored (unvalidated); `CheckpointError` if missing or not JSON."""
        if not self.record_path.exists():
            raise CheckpointError(
                f"'{self.record_path}' does not exist: not a SOART Lab run folder."
            )
        return read_json_object(self.record_path)

    def read_record(self) -> RunRecord:
        return RunRecord.from_dict(self.read_json(), source=str(self.record_path))

    def write_record(self, record: RunRecord) -> None:
        atomic_write_json(self.record_path, record.to_dict())

    def write_weights(self, weights: dict[str, bytes]) -> dict[str, Path]:
        """Write `checkpoint.checkpoint_bytes` output (keys ``"pth"``, ``"safetensors"``);
        returns the two paths under the same keys."""
        return {
            "safetensors": atomic_write_bytes(self.path / SAFETENSORS_FILE, weights["safetensors"]),
            "pth": atomic_write_bytes(self.pth_path, weights["pth"]),
        }

    def write(
        self,
        record: RunRecord,
        weights: Callable[[RunRecord], dict[str, bytes]],
        references: bytes,
        calibration: bytes | None = None,
    ) -> RunRecord:
        """Write a trained run as one unit: the weights (``weights(record)``, e.g. from
        `checkpoint.checkpoint_bytes`, with the record in the safetensors header), the
        reference embeddings, the ``calibration`` (when given) and the record go into a
        new sibling folder, which then
        takes the place of this one. Files of the old folder that the run does not
        rewrite (the training state) are kept. A crash or a full disk before the swap
        leaves the old run whole; readers never see the weights of one run beside the
        record of another. Returns the record as written (run id, creation time and a
        clean label filled in)."""
        record = replace(
            record,
            run_id=self.run_id,
            created=record.created or datetime.now().astimezone().isoformat(timespec="seconds"),
            label=clean_label(record.label),
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = Run(self._sibling("writing"))
        try:
            new.path.mkdir()
            new.write_weights(weights(record))
            atomic_write_bytes(new.references_path, references)
            if calibration is not None:
                atomic_write_bytes(new.calibration_path, calibration)
            new.write_record(record)
            if self.path.exists():
                _link_missing(self.path, new.path)
            self._replace_with(new.path)
        except BaseException:
            shutil.rmtree(new.path, ignore_errors=True)
            raise
        return record

    def _sibling(self, purpose: str) -> Path:
        """A fresh hidden folder name beside this one (same file system: renames work)."""
        return self.path.with_name(f".{self.path.name}.{purpose}-{secrets.token_hex(4)}")

    def _replace_with(self, folder: Path) -> None:
        """Put ``folder`` where this run's folder is, with renames: the old folder moves
        aside, the new one moves in, the old one is removed."""
        if not self.path.exists():
            os.rename(folder, self.path)
            return
        old = self._sibling("previous")
        os.rename(self.path, old)
        try:
            os.rename(folder, self.path)
        except BaseException:
            os.rename(old, self.path)  # put the old run back
            raise
        shutil.rmtree(old, ignore_errors=True)

    def check_writable(self) -> None:
        """`CheckpointError` now, before any training, when `write` could not write this
        run: the folder (when it exists) and the folder it lies in must take new files,
        and the run folder must not be a file."""
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"'{self.path}' is a file; a run needs a folder.")
        check_writable_folder(self.path)  # the training state is saved in it
        check_writable_folder(self.path.parent)  # the new run is made beside it

    def read_references(self) -> bytes | None:
        """The reference file's bytes, or None when the run has none; `CheckpointError`
        when it is not a regular file or larger than `MAX_REFERENCES_BYTES`."""
        if not os.path.lexists(self.references_path):
            return None
        return read_regular_file(self.references_path, MAX_REFERENCES_BYTES)

    def read_calibration(self) -> bytes | None:
        """The calibration file's bytes, or None when the run has none (saved before
        runs kept one); `CheckpointError` as `read_references`."""
        if not os.path.lexists(self.calibration_path):
            return None
        return read_regular_file(self.calibration_path, MAX_REFERENCES_BYTES)

    def bundle(self) -> bytes:
        """A zip of the files needed to predict elsewhere (`BUNDLE_FILES`)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in BUNDLE_FILES:
                if (self.path / name).is_file():
                    archive.write(self.path / name, arcname=name)
        return buffer.getvalue()


def read_bundle(path: Path, max_bytes: int) -> dict[str, bytes]:
    """The files of a bundle made by `Run.bundle`, by name; `CheckpointError` when it is
    not a zip or lacks the weights or the record, and — before anything is decompressed —
    when a member declares more than its cap (`BUNDLE_CAPS`), a compression ratio above
    the data zips' limit, or all of them together more than ``max_bytes``. Each member is
    read with a bounded read, so one that unpacks to more than it declared is refused too."""
    ratio_limit = Limits().max_compression_ratio
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            missing = [name for name in (SAFETENSORS_FILE, RUN_JSON) if name not in infos]
            if missing:
                raise CheckpointError(
                    f"{path.name} is not a SOART Lab bundle: {', '.join(missing)} missing "
                    f"(expected {', '.join(BUNDLE_FILES)})."
                )
            members = [infos[n] for n in BUNDLE_FILES if n in infos]
            total = sum(info.file_size for info in members)
            if total > max_bytes:
                raise CheckpointError(
                    f"{path.name} declares {total:,} bytes uncompressed; at most "
                    f"{max_bytes:,} are accepted. Nothing was decompressed."
                )
            for info in members:
                cap = BUNDLE_CAPS[info.filename]
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > cap or (
                    info.file_size >= _RATIO_CHECK_BYTES and ratio > ratio_limit
                ):
                    raise CheckpointError(
                        f"{path.name}: {info.filename} declares {info.file_size:,} bytes "
                        f"from {info.compress_size:,} compressed; at most {cap:,} bytes and "
                        f"a ratio of {ratio_limit:g}:1 are accepted. Nothing was decompressed."
                    )
            return {info.filename: _read_member(archive, info, path) for info in members}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, OSError) as exc:
        raise CheckpointError(f"{path.name} is not a valid zip: {exc}") from exc


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    """At most the member's cap + 1 bytes: a zip whose directory understates a member's
    size is refused rather than believed."""
    cap = BUNDLE_CAPS[info.filename]
    with archive.open(info) as member:
        data = member.read(cap + 1)
    if len(data) > cap:
        raise CheckpointError(
            f"{path.name}: {info.filename} unpacks to more than {cap:,} bytes; refused."
        )
    return data


def _link_missing(source: Path, target: Path) -> None:
    """Give ``target`` every entry of ``source`` that it lacks: files as hard links (no
    copy; the old folder keeps its own), else copies; folders copied."""
    for entry in source.iterdir():
        destination = target / entry.name
        if os.path.lexists(destination):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, destination, symlinks=True)
            continue
        try:
            os.link(entry, destination, follow_symlinks=False)
        except OSError:
            shutil.copy2(entry, destination, follow_symlinks=False)


@dataclass
class RunInfo:
    """One run as listed: the parts of its record a list shows, and its folder."""

    run_id: str  # folder name, YYYYmmdd-HHMMSS-<6 hex>
    label: str  # free text from the user, display only
    created: str  # ISO 8601 local time with offset
    path: Path  # the run folder
    loss: str  # training loss name ("soart3", "euclidean")
    status: str  # how training ended: "finished", "stopped", ...
    metrics: dict[str, Any] = field(default_factory=dict)  # held-out metrics
    history: tuple[dict[str, Any], ...] = ()  # per-epoch rows
    baselines: Baselines | None = None  # held-out accuracy without training (older runs: None)
    owner: str = ""  # who trained it when sign-in is on; "" = made without sign-in

    @classmethod
    def of(cls, run: Run) -> RunInfo:
        record = run.read_record()
        return cls(
            run_id=run.run_id,
            label=clean_label(record.label),
            created=record.created,
            path=run.path,
            loss=record.config.loss,
            status=record.status.value,
            metrics=record.metrics,
            history=record.history,
            baselines=record.baselines,
            owner=record.owner,
        )


class RunStore:
    """Run folders under ``home`` (argument, else ``$SOARTLAB_HOME``, else
    ``~/.soartlab/runs``); the folder is created when the first run is made."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        if home is None:
            home = os.environ.get(HOME_ENV) or DEFAULT_HOME
        self.home = Path(home).expanduser()

    def __repr__(self) -> str:
        return f"RunStore({str(self.home)!r})"

    def new_run(self) -> Run:
        """A new, empty run folder with a fresh id (written by `Run.write`)."""
        self.home.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            run_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            try:
                (self.home / run_id).mkdir()
            except FileExistsError:
                continue
            return Run(self.home / run_id)
        raise CheckpointError(f"Could not make a new run id under '{self.home}'.")

    def scan(self) -> tuple[list[RunInfo], list[str]]:
        """Every trained run, newest first, and one line per run folder that could not be
        read (which folder, why). Folders without a record (being written) are skipped;
        a record that is not a regular file is never opened."""
        if not self.home.is_dir():
            return [], []
        infos, problems = [], []
        for entry in self.home.iterdir():
            if not RUN_ID_RE.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
                continue
            run = Run(entry)
            if not os.path.lexists(run.record_path):
                continue
            try:
                infos.append(RunInfo.of(run))
            except CheckpointError as exc:
                problems.append(f"{entry.name}: {exc}")
        infos.sort(key=lambda info: (_sort_time(info.created), info.run_id), reverse=True)
        return infos, sorted(problems)

    def list(self) -> list[RunInfo]:
        return self.scan()[0]

    def info(self, run_id: str) -> RunInfo:
        return RunInfo.of(self.open(run_id))

    def open(self, run_id: str) -> Run:
        """Run ``run_id``; `CheckpointError` for a malformed or unknown id."""
        if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
            raise CheckpointError(
                f"Run id {run_id!r} is not valid; expected the form YYYYmmdd-HHMMSS-xxxxxx "
                f"(6 hex digits), e.g. '20250109-143000-a1b2c3'."
            )
        run_dir = self.home / run_id
        if run_dir.is_symlink() or not run_dir.is_dir():
            raise CheckpointError(f"No run '{run_id}' in '{self.home}'.")
        if run_dir.resolve().parent != self.home.resolve():
            raise CheckpointError(f"Run '{run_id}' is not inside '{self.home}'.")
        return Run(run_dir)

    def latest_of(self, who: Actor | None) -> RunInfo | None:
        """The newest run ``who`` owns (local mode: the newest run), or None."""
        return next((info for info in self.list() if owns(who, info.owner)), None)

    def rename(self, run_id: str, label: str, *, by: Actor | None = None) -> RunInfo:
        """Change the run's label (only the label, only in its record). ``by``: the
        signed-in user; `access.AccessError` unless the run is theirs or they are an
        admin (None: local mode, no check)."""
        run = self.open(run_id)
        record = run.read_record()
        check_may_change(by, record.owner, f"run {run_id}", "rename")
        run.write_record(record.with_label(clean_label(label)))
        return RunInfo.of(run)

    def delete(self, run_id: str, *, by: Actor | None = None) -> None:
        """Remove the run's folder and everything in it; ``by`` as for `rename`."""
        run = self.open(run_id)
        if by is not None:
            check_may_change(by, run.read_record().owner, f"run {run_id}", "delete")
        shutil.rmtree(run.path)


def _sort_time(created: str) -> float:
    try:
        return datetime.fromisoformat(created).timestamp()
    except (TypeError, ValueError):
        return float("-inf")
