"""The file-system side of ``folder-microscope``, all blocking (called in worker threads): listing the folder,
reading a stable file, copying it into the work folder, the ledger of handed-out files, and the health check."""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instruments.base import Health
from instruments.drivers.folder_tiff import CorruptTiff, TiffReport, inspect_tiff

REQUEST_SUFFIX = ".request.json"
Signature = tuple[int, int]  # (size in bytes, mtime in ns)


@dataclass(frozen=True)
class Read:
    """A stable file read in full: ``ok`` (with its bytes and report), ``changed`` since it was listed,
    ``corrupt`` (does not parse) or ``unreadable`` (an OS error)."""

    status: str
    data: bytes = b""
    report: TiffReport | None = None
    error: str = ""


def scan(folder: Path, pattern: str, marker: str | None) -> tuple[dict[str, Signature], bool, str]:
    """Regular files matching ``pattern`` (relative names) with their signature; whether a file matching
    ``marker`` exists; and why the folder could not be listed ('' when it could)."""
    if not folder.is_dir():
        return {}, False, f"{folder} is missing or not a folder"
    try:
        names = glob.glob(pattern, root_dir=folder)
        marker_seen = bool(marker and glob.glob(marker, root_dir=folder))
    except OSError as exc:
        return {}, False, str(exc)
    found: dict[str, Signature] = {}
    for name in names:
        if name.endswith(REQUEST_SUFFIX) or (marker and fnmatch.fnmatchcase(name, marker)):
            continue
        try:
            st = os.stat(folder / name)
        except OSError:
            continue  # vanished between listing and stat
        if stat.S_ISREG(st.st_mode):
            found[name] = (st.st_size, st.st_mtime_ns)
    return found, marker_seen, ""


def read_stable(path: Path, signature: Signature) -> Read:
    """Reads ``path`` whole and parses those very bytes, if it still has ``signature``."""
    try:
        data = path.read_bytes()
        st = os.stat(path)
    except FileNotFoundError:
        return Read("changed")
    except OSError as exc:
        return Read("unreadable", error=str(exc))
    if (st.st_size, st.st_mtime_ns) != signature or len(data) != signature[0]:
        return Read("changed")
    try:
        return Read("ok", data, inspect_tiff(data))
    except CorruptTiff as exc:
        return Read("corrupt", error=str(exc))


def copy_into(base: Path, sample_id: str, name: str, data: bytes) -> Path:
    """Writes ``data`` to ``base/<sample folder>/<name>`` atomically; the sample folder name is file-safe."""
    safe = re.sub(r"[^\w.-]", "_", sample_id)[:60] + "-" + hashlib.sha256(sample_id.encode()).hexdigest()[:8]
    dest = base / safe / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return dest


class Ledger:
    """Files handed out, one JSON line per sample, appended and fsynced: ``recorded`` (sample id -> its file
    records) survives restarts, and ``claimed`` (file name -> sample id) keeps a file from being handed out twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recorded: dict[str, list[dict[str, Any]]] = {}
        self.claimed: dict[str, str] = {}
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash while it was written: its sample is acquired again
            self.recorded[entry["sample_id"]] = entry["files"]
            for r in entry["files"]:
                self.claimed[r["name"]] = entry["sample_id"]

    def append(self, sample_id: str, key: str, records: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"sample_id": sample_id, "key": key, "files": records}, sort_keys=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.recorded[sample_id] = records


def folder_health(folder: Path, *, need_write: bool, min_free_gb: float) -> Health:
    """Folder exists and is readable (and writable when ``need_write``), free space, the newest file."""
    info: dict[str, Any] = {"folder": str(folder)}
    if not folder.exists():
        return Health(False, "missing", f"{folder} does not exist (is the microscope PC's share mounted?)", info)
    if not folder.is_dir():
        return Health(False, "not_a_folder", f"{folder} is not a folder", info)
    try:
        entries = [(e.name, e.stat().st_mtime) for e in os.scandir(folder) if e.is_file()]
    except OSError as exc:
        return Health(False, "unreadable", f"cannot list {folder}: {exc}", info)
    free_gb = shutil.disk_usage(folder).free / 1e9
    info |= {"files": len(entries), "free_gb": round(free_gb, 3), "writable": os.access(folder, os.W_OK)}
    newest_text = "no files yet"
    if entries:
        name, mtime = max(entries, key=lambda e: e[1])
        written = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(mtime))
        info |= {"newest_file": name, "newest_written": written, "newest_age_s": round(time.time() - mtime, 1)}
        newest_text = f"newest {name} written {written}"
    detail = f"{folder}: {len(entries)} file(s), {newest_text}; {free_gb:.1f} GB free"
    if not os.access(folder, os.R_OK | os.X_OK):
        return Health(False, "unreadable", f"{folder} is not readable by this user", info)
    if need_write and not info["writable"]:
        return Health(False, "read_only", f"{detail}; request_file is on but the folder is not writable", info)
    if free_gb < min_free_gb:
        return Health(False, "disk_full", f"{detail}: below min_free_gb={min_free_gb:g}", info)
    return Health(True, "ready", detail, info)
