"""The lake's CDC checkpoint: one JSON object per task, replaced whole.

It holds the applied source position, the last file stamp and, while a batch's
files are being written, the batch as ``pending`` (see :mod:`.cdc`, "Exactly once").
It lives in ``<prefix>/_opendms/checkpoints/<task>.json``, a folder query engines
skip (see :mod:`.storage`); one at the place earlier versions used is moved there.
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass
from urllib.parse import quote

import pyarrow.fs as pafs

from opendms.endpoints.lake.storage import (
    HIDDEN_FOLDER,
    delete_files,
    put_object,
    translate_os_error,
)
from opendms.endpoints.lake.target import LakeTarget
from opendms.errors import TaskError

log = logging.getLogger("opendms.lake.cdc")
CHECKPOINT_FOLDER = f"{HIDDEN_FOLDER}/checkpoints"
OLD_CHECKPOINT_FOLDER = "opendms_checkpoints"  # where versions before 2026-12 kept them


@dataclass(frozen=True)
class Pending:
    """A batch whose files may be partly written: its end, stamp and file paths."""

    end: str
    stamp: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Checkpoint:
    position: str | None = None
    last_stamp: str | None = None
    pending: Pending | None = None

    def to_json(self) -> str:
        pending = None
        if self.pending is not None:
            p = self.pending
            pending = {"end": p.end, "stamp": p.stamp, "files": list(p.files)}
        data = {"position": self.position, "last_stamp": self.last_stamp, "pending": pending}
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        data = json.loads(text)
        raw = data.get("pending")
        pending = None
        if raw:
            pending = Pending(str(raw["end"]), str(raw["stamp"]), tuple(raw["files"]))
        return cls(data.get("position"), data.get("last_stamp"), pending)


class CheckpointStore:
    """Reads and replaces one task's checkpoint object in the lake.

    A checkpoint at the place older versions kept it (``<prefix>/opendms_checkpoints/``,
    beside the schema folders, where a crawler takes it for a table) is moved to
    :data:`CHECKPOINT_FOLDER` when first read, whole (its pending batch included), so
    the task resumes where it was."""

    def __init__(self, target: LakeTarget, task: str) -> None:
        self.target = target
        self.storage = target.storage
        name = quote(task, safe="-_.") + ".json"
        self.path = self.storage.path(CHECKPOINT_FOLDER, name)
        self.old_path = self.storage.path(OLD_CHECKPOINT_FOLDER, name)

    def load(self) -> Checkpoint:
        try:
            text = self._read(self.path)
            old = self._read(self.old_path)
            if old is not None:
                text = self._move(old) if text is None else text
                self._drop_old()
        except OSError as exc:
            raise translate_os_error(exc, self.target.url) from exc
        if text is None:
            return Checkpoint()
        try:
            return Checkpoint.from_json(text)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            where = f"{self.storage.display}/{CHECKPOINT_FOLDER}"
            raise TaskError(
                f"lake checkpoint {posixpath.basename(self.path)} in {where} "
                f"is damaged ({exc}); delete it to start over"
            ) from exc

    def _read(self, path: str) -> str | None:
        fs = self.storage.fs
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        with fs.open_input_stream(path) as stream:
            return bytes(stream.read()).decode()

    def _move(self, text: str) -> str:
        put_object(self.storage, self.path, text.encode())
        log.info("lake checkpoint moved from %s to %s", self.old_path, self.path)
        return text

    def _drop_old(self) -> None:
        """Delete the old-place checkpoint, and its folder when that is left empty."""
        delete_files(self.storage, [self.old_path])
        folder, fs = posixpath.dirname(self.old_path), self.storage.fs
        if not self.storage.atomic_put and not fs.get_file_info(pafs.FileSelector(folder)):
            fs.delete_dir(folder)

    def save(self, checkpoint: Checkpoint) -> None:
        try:
            put_object(self.storage, self.path, checkpoint.to_json().encode())
        except OSError as exc:
            raise translate_os_error(exc, self.target.url) from exc
