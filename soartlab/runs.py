"""Training runs on disk: one folder per run under a home folder, described by run.json.

Folder names are run ids made here (``YYYYmmdd-HHMMSS-<6 hex>``), never anything a user
typed: a label such as ``"../../etc"`` is stored in run.json and shown, nothing more.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from soartlab.checkpoint import atomic_write_json, read_json_object
from soartlab.errors import CheckpointError

RUN_JSON = "run.json"
RUN_ID_RE = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")  # always used with fullmatch
MAX_LABEL_CHARS = 100
DEFAULT_HOME = Path("~/.soartlab/runs")
HOME_ENV = "SOARTLAB_HOME"


@dataclass
class RunInfo:
    """One run as listed: what run.json says, plus where the folder is."""

    run_id: str  # folder name, YYYYmmdd-HHMMSS-<6 hex>
    label: str  # free text from the user, display only
    created: str  # ISO 8601 local time with offset
    path: Path  # the run folder
    loss: str | None = None  # training loss name ("soart3", "euclidean"), once trained
    metrics: dict[str, Any] = field(default_factory=dict)  # held-out metrics, once trained
    status: str = "created"  # "created", then whatever the trainer sets ("finished", ...)


def clean_label(label: Any) -> str:
    """Printable single-line text of at most `MAX_LABEL_CHARS` characters."""
    text = "" if label is None else str(label)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:MAX_LABEL_CHARS]


def write_run_json(run_dir: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Atomically (re)write ``run_dir/run.json``."""
    return atomic_write_json(Path(run_dir) / RUN_JSON, data)


def read_run_json(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``run_dir/run.json``; `CheckpointError` if missing or invalid."""
    path = Path(run_dir) / RUN_JSON
    if not path.exists():
        raise CheckpointError(f"'{path}' does not exist: not a SOART Lab run folder.")
    return read_json_object(path)


class RunStore:
    """Run folders under ``home`` (argument, else ``$SOARTLAB_HOME``, else
    ``~/.soartlab/runs``); the folder is created when the first run is made."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        if home is None:
            home = os.environ.get(HOME_ENV) or DEFAULT_HOME
        self.home = Path(home).expanduser()

    def __repr__(self) -> str:
        return f"RunStore({str(self.home)!r})"

    def new_run(self, label: str = "") -> Path:
        """Create an empty run folder with a fresh id and its run.json; return the folder."""
        self.home.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            now = datetime.now().astimezone()
            run_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            run_dir = self.home / run_id
            try:
                run_dir.mkdir()
            except FileExistsError:
                continue
            write_run_json(
                run_dir,
                {
                    "run_id": run_id,
                    "label": clean_label(label),
                    "created": now.isoformat(timespec="seconds"),
                    "status": "created",
                },
            )
            return run_dir
        raise CheckpointError(f"Could not make a new run id under '{self.home}'.")

    def list(self) -> list[RunInfo]:
        """Every run with a readable run.json, newest first; other folders are skipped."""
        if not self.home.is_dir():
            return []
        infos = []
        for entry in self.home.iterdir():
            if not RUN_ID_RE.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
                continue
            try:
                infos.append(self._info(entry))
            except CheckpointError:
                continue
        return sorted(infos, key=lambda info: (_sort_time(info.created), info.run_id), reverse=True)

    def info(self, run_id: str) -> RunInfo:
        return self._info(self.open(run_id))

    def open(self, run_id: str) -> Path:
        """The folder of run ``run_id``; `CheckpointError` for a malformed or unknown id."""
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
        return run_dir

    def rename(self, run_id: str, label: str) -> RunInfo:
        """Change the run's label (only the label, only in run.json)."""
        run_dir = self.open(run_id)
        data = read_run_json(run_dir)
        data["label"] = clean_label(label)
        write_run_json(run_dir, data)
        return self._info(run_dir)

    def delete(self, run_id: str) -> None:
        """Remove the run's folder and everything in it."""
        run_dir = self.open(run_id)
        shutil.rmtree(run_dir)

    def _info(self, run_dir: Path) -> RunInfo:
        data = read_run_json(run_dir)
        config = data.get("config") if isinstance(data.get("config"), dict) else {}
        loss = data.get("loss", config.get("loss"))
        metrics = data.get("metrics")
        return RunInfo(
            run_id=run_dir.name,
            label=clean_label(data.get("label", "")),
            created=str(data.get("created", "")),
            path=run_dir,
            loss=loss if isinstance(loss, str) else None,
            metrics=metrics if isinstance(metrics, dict) else {},
            status=str(data.get("status", "created")),
        )


def _sort_time(created: str) -> float:
    try:
        return datetime.fromisoformat(created).timestamp()
    except (TypeError, ValueError):
        return float("-inf")
