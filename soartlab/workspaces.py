"""Workspaces: what a user's session was doing, kept on the server so a refresh loses nothing.

A workspace is a folder ``<id>/`` under ``$SOARTLAB_WORKSPACES``, else beside the runs
folder as ``<runs home>.workspaces`` (``~/.soartlab/runs.workspaces``), holding ``workspace.json`` — its owner and the session's state as plain
JSON (data choice, good class, tuned transform, current run, page settings) — and, when
the user uploaded data, that file's bytes as ``data.<suffix>``. The app puts the id in the
URL (``?ws=``) and restores the state from here after a refresh or in a new tab.

Ids are made here (``secrets.token_urlsafe``), never taken from a user as a path: an id
that is not of that form is refused before any file is touched. A workspace of a signed-in
owner opens only for that owner (`soartlab.access.AccessError` otherwise).
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soartlab.access import AccessError, Actor
from soartlab.errors import DataError, SoartLabError
from soartlab.files import MAX_JSON_BYTES, atomic_write_bytes, atomic_write_json, read_json_object
from soartlab.io.registry import SUPPORTED_SUFFIXES
from soartlab.runs import RunStore

SUFFIX = ".workspaces"
HOME_ENV = "SOARTLAB_WORKSPACES"
STATE_FILE = "workspace.json"
DATA_STEM = "data"
ID_RE = re.compile(r"[A-Za-z0-9_-]{16}")  # always used with fullmatch
# the files the readers take (`io.SUPPORTED_SUFFIXES`: one owner), without their dots
DATA_SUFFIXES = tuple(s.lstrip(".") for s in SUPPORTED_SUFFIXES)


def new_id() -> str:
    return secrets.token_urlsafe(12)  # 16 characters of [A-Za-z0-9_-]


@dataclass
class Workspace:
    """One workspace folder."""

    id: str
    path: Path
    owner: str  # "" in local single-user mode

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    def read_state(self) -> dict[str, Any]:
        """The saved session state ({} when nothing was saved yet)."""
        if not self.state_path.is_file():
            return {}
        raw = read_json_object(self.state_path)
        state = raw.get("state", {})
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        """Save ``state`` (plain JSON values); `SoartLabError` when it is too large."""
        import json

        body = {"id": self.id, "owner": self.owner, "state": state}
        if len(json.dumps(body)) > MAX_JSON_BYTES:
            raise SoartLabError(f"Workspace {self.id}: its state is over {MAX_JSON_BYTES:,} bytes.")
        atomic_write_json(self.state_path, body)

    def save_data(self, name: str, data: bytes) -> Path:
        """Keep an uploaded file's bytes (only its suffix is used); replaces the last."""
        suffix = Path(name).suffix.lower().lstrip(".")
        if suffix not in DATA_SUFFIXES:
            raise DataError(
                f"File '{name}' has an unsupported type; expected one of "
                + ", ".join(f".{s}" for s in DATA_SUFFIXES)
                + "."
            )
        for old in self.path.glob(f"{DATA_STEM}.*"):
            old.unlink()
        return atomic_write_bytes(self.path / f"{DATA_STEM}.{suffix}", data)

    def data_file(self) -> Path | None:
        """The kept upload, or None."""
        for suffix in DATA_SUFFIXES:
            path = self.path / f"{DATA_STEM}.{suffix}"
            if path.is_file() and not path.is_symlink():
                return path
        return None


class WorkspaceStore:
    """Workspaces under ``$SOARTLAB_WORKSPACES``, else beside the runs folder of ``runs``
    (default: the app's `RunStore`)."""

    def __init__(self, runs: RunStore | None = None) -> None:
        configured = os.environ.get(HOME_ENV)
        if configured:
            self.root = Path(configured).expanduser()
        else:
            home = (runs or RunStore()).home
            self.root = home.with_name(home.name + SUFFIX)

    def create(self, who: Actor | None) -> Workspace:
        """A new workspace of ``who`` (None: local mode)."""
        for _ in range(100):
            ws_id = new_id()
            path = self.root / ws_id
            try:
                path.mkdir(parents=True)
            except FileExistsError:
                continue
            workspace = Workspace(ws_id, path, who.user if who else "")
            workspace.write_state({})
            return workspace
        raise SoartLabError(f"Could not make a new workspace under '{self.root}'.")

    def open(self, ws_id: str, who: Actor | None) -> Workspace:
        """Workspace ``ws_id``; `SoartLabError` when the id is malformed or unknown,
        `AccessError` when it belongs to another signed-in user than ``who``."""
        if not isinstance(ws_id, str) or not ID_RE.fullmatch(ws_id):
            raise SoartLabError(
                f"Workspace id {str(ws_id)[:40]!r} is not valid; expected 16 letters, "
                "digits, '-' or '_' as the app writes them in the address."
            )
        path = self.root / ws_id
        if path.is_symlink() or not path.is_dir():
            raise SoartLabError(f"No workspace '{ws_id}' on this server.")
        state_path = path / STATE_FILE
        raw = read_json_object(state_path) if os.path.lexists(state_path) else {}
        owner = raw.get("owner", "")
        owner = owner if isinstance(owner, str) else ""
        if owner and (who is None or owner.lower() != who.user.lower()):
            raise AccessError(f"Workspace '{ws_id}' belongs to another user; it is not opened.")
        if not owner and who is not None:
            # Made in local mode, before sign-in was turned on: not handed to anyone.
            raise AccessError(f"Workspace '{ws_id}' was made without sign-in; it is not opened.")
        return Workspace(ws_id, path, owner)

    def latest_of(self, who: Actor | None) -> Workspace | None:
        """The workspace of ``who`` saved last (sign-in lands on the home page without
        the address's workspace: this is the one to go back to)."""
        if not self.root.is_dir():
            return None
        found = []
        for entry in self.root.iterdir():
            if not ID_RE.fullmatch(entry.name):
                continue
            try:
                workspace = self.open(entry.name, who)
            except SoartLabError:
                continue
            found.append((workspace.state_path.stat().st_mtime, entry.name, workspace))
        return max(found)[2] if found else None
