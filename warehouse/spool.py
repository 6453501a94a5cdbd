"""The spool: an append-only staging area next to the warehouse file (`<warehouse>.spool/`).

Every write goes here first, as one JSON file per batch, made atomic by writing a hidden temp file, fsyncing
it and renaming it into place. The store then merges every pending file into DuckDB in one transaction and
deletes them. When another process holds the DuckDB file past the lock timeout, the files simply wait for
the next store: nothing fetched is lost, and the merge (keyed by batch id) stores each batch exactly once.

The codec turns our frozen dataclasses into JSON and back, driven by their type hints.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
import time
import types
import typing
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from newsmon.errors import StorageError
from newsmon.records import RunBatch

FORMAT = 1
SUFFIX = ".json"
TEMP_PREFIX = ".tmp-"
STALE_TEMP_S = 3600.0  # a temp file this old was left by a killed writer


@dataclass(frozen=True)
class SpoolEntry:
    """One pending batch: `kind` is 'run' (a RunBatch), 'alerts', 'alert_outcomes' (delivery results),
    'raw_pages', 'article_updates' (re-extracted articles) or 'verdicts' (re-tagged)."""

    path: Path
    kind: str
    batch_id: str
    spooled_at: datetime
    schema_version: int
    payload: dict[str, Any]


def spool_dir(warehouse_path: Path) -> Path:
    return Path(str(warehouse_path) + ".spool")


def write_entry(directory: Path, kind: str, batch_id: str, payload: dict[str, Any], *, spooled_at: datetime,
                schema_version: int) -> SpoolEntry:
    """Write one batch atomically (temp file, fsync, rename, fsync the directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{spooled_at:%Y%m%dT%H%M%S%f}Z-{kind}-{batch_id}{SUFFIX}"
    doc = {"format": FORMAT, "kind": kind, "batch_id": batch_id, "spooled_at": spooled_at.isoformat(),
           "schema_version": schema_version, "payload": payload}
    temp = directory / f"{TEMP_PREFIX}{os.getpid()}-{name}"
    with open(temp, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))  # one C-encoder call: ~30x json.dump
        f.flush()
        os.fsync(f.fileno())
    final = directory / name
    os.replace(temp, final)
    _fsync_dir(directory)
    return SpoolEntry(final, kind, batch_id, spooled_at, schema_version, payload)


def pending(directory: Path) -> list[Path]:
    """Complete batch files, oldest first (names start with the UTC time they were spooled)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == SUFFIX and not p.name.startswith(TEMP_PREFIX))


def read_entry(path: Path) -> SpoolEntry:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StorageError(f"{path}: unreadable spooled batch ({exc}); move it aside to let runs continue, "
                           "it holds records not yet in the warehouse") from exc
    if doc.get("format") != FORMAT:
        raise StorageError(f"{path}: spool format {doc.get('format')} is not {FORMAT}; written by another "
                           "newsmon version: merge it with that version")
    return SpoolEntry(path, doc["kind"], doc["batch_id"], datetime.fromisoformat(doc["spooled_at"]),
                      int(doc["schema_version"]), doc["payload"])


def remove(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)
    if paths:
        _fsync_dir(paths[0].parent)


def clean_stale_temps(directory: Path, *, now_s: float | None = None) -> None:
    """Delete temp files left by writers killed mid-write (never complete, never merged)."""
    if not directory.is_dir():
        return
    now_s = time.time() if now_s is None else now_s
    for p in directory.glob(TEMP_PREFIX + "*"):
        if now_s - p.stat().st_mtime > STALE_TEMP_S:
            p.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- codec ----------------------------------------------------------------------------------------

def encode_run(batch: RunBatch, finished_at: datetime) -> dict[str, Any]:
    return {"finished_at": finished_at.isoformat(), "batch": to_json(batch)}


def decode_run(payload: dict[str, Any]) -> tuple[RunBatch, datetime]:
    return from_json(RunBatch, payload["batch"]), datetime.fromisoformat(payload["finished_at"])


def to_json(value: Any) -> Any:
    """A frozen dataclass (nested records, tuples, datetimes, paths, bytes as base64) as plain JSON values."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(tp: type) -> dict[str, Any]:
    return typing.get_type_hints(tp)


def from_json(tp: Any, value: Any) -> Any:
    """The inverse of to_json for type `tp` (fields missing from older files take their defaults)."""
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        return from_json(real[0], value) if len(real) == 1 else value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v) for v in value)
        return tuple(from_json(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        return {k: from_json(args[1], v) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        return tp(**{f.name: from_json(hints[f.name], value[f.name])
                     for f in dataclasses.fields(tp) if f.init and f.name in value})
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is Path:
        return Path(value)
    if tp is bytes:
        return base64.b64decode(value)
    return value


def new_id() -> str:
    return uuid.uuid4().hex[:16]
