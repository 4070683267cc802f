"""An append-only JSON-lines journal of the requests an instrument received and what became of them.

Each line is written and fsynced before the instrument acts on it, so that after a crash the instrument
still knows every key it accepted. A torn last line (power cut mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECEIVED, DONE, FAILED = "received", "done", "failed"


@dataclass
class Entry:
    """What the journal knows about one key: its latest event and the data that came with it."""

    key: str
    event: str
    data: dict[str, Any] = field(default_factory=dict)


class Journal:
    """Append-only record of request keys; ``get`` answers from memory, every write is fsynced to disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Entry] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            text = path.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):  # a torn last line: end it so the next record stands alone
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write("\n")
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                    key, event = rec.pop("key"), rec.pop("event")
                except (json.JSONDecodeError, KeyError, AttributeError):
                    continue
                prev = self._entries.get(key)
                data = {**(prev.data if prev else {}), **rec}
                self._entries[key] = Entry(key, event, data)

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def __len__(self) -> int:
        return len(self._entries)

    def lines(self, key: str | None = None) -> list[dict[str, Any]]:
        """The raw records on disk (all, or those of ``key``)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if key is None or rec.get("key") == key:
                out.append(rec)
        return out

    def append(self, key: str, event: str, **data: Any) -> Entry:
        """Writes one record durably, then remembers it."""
        rec = {"key": key, "event": event, **data}
        text = json.dumps(rec, sort_keys=True, default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        prev = self._entries.get(key)
        entry = Entry(key, event, {**(prev.data if prev else {}), **data})
        self._entries[key] = entry
        return entry
