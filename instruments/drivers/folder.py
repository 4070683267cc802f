"""``folder-microscope``: an imager for a microscope whose PC writes TIFF files into a (shared) folder.

For each sample the driver waits for the files matching its naming pattern (``options.pattern``, placeholders
filled from the sample). A file counts only when its size and mtime have stayed the same for ``stable_for_s``
and every page decodes; a stable file that keeps failing to parse for ``truncated_grace_s`` fails the sample
("truncated or corrupt TIFF"), and so does one that carries no physical scale (unless ``pixel_size_um`` is
given). Accepted files are recorded in a ledger in the work folder (optionally copied there too), so that no
file is handed out twice and a repeated ``acquire`` for the same sample returns the same files. Waiting is
``asyncio.sleep``; listing, reading and parsing run in worker threads so that the event loop never blocks.

A sample takes every matching file that appears until it has ``min_files`` and none is still being written (or
until the done marker, or ``max_files``). Put a separator after ``{sample_id}`` in the pattern ('S-1_*' does not
match 'S-10_000.tif'; 'S-1*' does), and set ``max_files`` when several samples share a pattern.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from instruments.base import Health, Micrograph, PermanentFault, Sample, TransientFault
from instruments.drivers.folder_files import REQUEST_SUFFIX, Ledger, copy_into, folder_health, read_stable, scan
from instruments.drivers.folder_options import FolderOptions, PatternError, expand
from instruments.registry import InstrumentContext

LEDGER_NAME = "folder_microscope_ledger.jsonl"
COPIES_DIR = "folder_microscope"
NO_SCALE_HELP = (
    "it carries no pixel size (no resolution tags with a unit, no FEI/Thermo or Zeiss SEM metadata, no pixel_size_um "
    "in the ImageDescription); make the acquisition software save the scale, or give the microscope's pixel size "
    "as the instrument option pixel_size_um (µm per pixel)"
)


@dataclass
class _Watch:
    """A candidate file being watched: its (size, mtime_ns), since when (loop time), and parse failures."""

    signature: tuple[int, int]
    since: float
    failing_since: float | None = None
    error: str = ""


class FolderMicroscope:
    """Imager protocol over a folder that acquisition software writes TIFF files into."""

    simulated: ClassVar[bool] = False

    def __init__(self, *, context: InstrumentContext, **options: Any) -> None:
        self.options = FolderOptions(**options)
        self.context = context
        self.folder: Path = self.options.folder
        self._ledger = Ledger(context.workdir / LEDGER_NAME)
        self._claimed = self._ledger.claimed  # file name (relative to folder) -> sample_id that took it

    # --- what a campaign can check without building one -------------------------------------------
    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        FolderOptions.model_validate(dict(options))

    @classmethod
    def outputs(cls, options: Mapping[str, Any]) -> dict[str, str]:
        """An imager measures nothing directly: its images go to the imaging pipeline."""
        cls.validate_options(options)
        return {}

    # --- Imager protocol ---------------------------------------------------------------------------
    def placeholders(self, sample: Sample) -> dict[str, Any]:
        """Values the patterns may use: the sample's conditions, then sample_id, key, campaign and index."""
        values: dict[str, Any] = {k: v for k, v in sample.conditions.items() if str(k).isidentifier()}
        values |= {
            "sample_id": sample.sample_id,
            "key": sample.key,
            "campaign": (sample.attributes or {}).get("campaign") or self.context.campaign,
        }
        if "index" in (sample.attributes or {}):
            values["index"] = sample.attributes["index"]
        return values

    async def acquire(self, sample: Sample) -> list[Micrograph]:
        done = self._ledger.recorded.get(sample.sample_id)
        if done is not None and all(Path(r["path"]).is_file() for r in done):
            return [self._micrograph(r) for r in done]  # the same sample asked again: the same files
        values = self.placeholders(sample)
        try:
            pattern = expand(self.options.pattern, values)
            marker = expand(self.options.done_marker, values) if self.options.done_marker else None
            request = self._request_name(sample) if self.options.request_file else None
        except PatternError as exc:
            raise PermanentFault(str(exc), code="bad_pattern") from None
        if not await asyncio.to_thread(self.folder.is_dir):
            raise TransientFault(
                f"the microscope folder {self.folder} does not exist or is not mounted", code="folder_missing"
            )
        if request is not None:
            await asyncio.to_thread(self._write_request, request, sample, pattern, marker)
        held = {n for n, sid in self._claimed.items() if sid == sample.sample_id}
        try:
            records = await self._wait(sample.sample_id, pattern, marker)
        except BaseException:  # a failed acquisition keeps no claims of its own
            for name in [n for n, sid in self._claimed.items() if sid == sample.sample_id and n not in held]:
                del self._claimed[name]
            raise
        finally:
            if request is not None:
                await asyncio.to_thread((self.folder / request).unlink, missing_ok=True)
        await asyncio.to_thread(self._ledger.append, sample.sample_id, sample.key, records)
        return [self._micrograph(r) for r in records]

    async def ping(self) -> Health:
        """Folder exists and is readable (writable too when request files are on), free space, newest file."""
        opts = self.options
        return await asyncio.to_thread(
            folder_health, self.folder, need_write=opts.request_file, min_free_gb=opts.min_free_gb
        )

    # --- waiting for one sample's files ------------------------------------------------------------
    async def _wait(self, sid: str, pattern: str, marker: str | None) -> list[dict[str, Any]]:
        opts = self.options
        loop = asyncio.get_running_loop()
        deadline = loop.time() + opts.timeout_s
        watches: dict[str, _Watch] = {}
        accepted: dict[str, dict[str, Any]] = {}
        while True:
            now = loop.time()  # no later than this listing's stat calls
            found, marker_seen, error = await asyncio.to_thread(scan, self.folder, pattern, marker)
            seen = loop.time()  # no earlier than them: stability is measured from here, conservatively
            others = {n for n in found if self._claimed.get(n, sid) != sid}
            for name in [n for n in watches if n not in found or n in others]:
                del watches[name]  # deleted or renamed meanwhile, or taken by another sample
            for name, signature in sorted(found.items()):
                if name in accepted or name in others:
                    continue
                if opts.max_files is not None and len(accepted) >= opts.max_files:
                    break
                w = watches.get(name)
                if w is None or w.signature != signature:
                    watches[name] = _Watch(signature, seen)
                    continue
                if now - w.since < opts.stable_for_s:
                    continue
                record = await self._try_accept(sid, name, w, seen)
                if record is not None:
                    accepted[name] = record
                    del watches[name]
            if opts.max_files is not None and len(accepted) >= opts.max_files:
                return list(accepted.values())
            if not watches and (marker_seen or marker is None) and len(accepted) >= opts.min_files:
                return list(accepted.values())
            if marker_seen and not watches:
                raise PermanentFault(
                    f"the acquisition software wrote the done marker {marker!r} in {self.folder} but only "
                    f"{len(accepted)} of min_files={opts.min_files} file(s) match {pattern!r} for sample {sid!r}",
                    code="too_few_files",
                )
            if now >= deadline:
                why = self._timeout_reason(sid, pattern, marker if not marker_seen else None, accepted, watches, others)
                raise PermanentFault(
                    why + (f"; the folder could not be listed: {error}" if error else ""), code="timeout"
                )
            await asyncio.sleep(min(opts.poll_s, max(deadline - loop.time(), 0.0)))

    async def _try_accept(self, sid: str, name: str, w: _Watch, now: float) -> dict[str, Any] | None:
        """Reads and checks a stable file; its record once accepted, None to keep watching, or a PermanentFault."""
        path = self.folder / name
        read = await asyncio.to_thread(read_stable, path, w.signature)
        if read.status == "changed":
            return None  # the next listing sees the new size and starts the stability clock again
        if read.status != "ok":
            w.failing_since = now if w.failing_since is None else w.failing_since
            w.error = read.error
            if now - w.failing_since < self.options.truncated_grace_s:
                return None
            what = "truncated or corrupt TIFF" if read.status == "corrupt" else "unreadable file"
            raise PermanentFault(
                f"{what}: {path} ({w.signature[0]} bytes, unchanged for {now - w.since:.1f} s): {read.error}",
                code="corrupt_tiff" if read.status == "corrupt" else "unreadable_file",
            )
        assert read.report is not None
        if read.report.scale_source is None and self.options.pixel_size_um is None:
            raise PermanentFault(f"{path}: {NO_SCALE_HELP}", code="no_pixel_size")
        if self._claimed.get(name, sid) != sid:
            return None  # another lane took it while this one was reading
        self._claimed[name] = sid
        copies = self.context.workdir / COPIES_DIR
        copy = (
            await asyncio.to_thread(copy_into, copies, sid, name, read.data) if self.options.copy_to_workdir else None
        )
        report = read.report
        return {
            "name": name,
            "source": str(path),
            "path": str(copy or path),
            "size_bytes": len(read.data),
            "mtime_ns": w.signature[1],
            "sha256": hashlib.sha256(read.data).hexdigest(),
            "pages": report.pages,
            "shape": list(report.shape),
            "dtype": report.dtype,
            "scale_source": report.scale_source,
            "file_pixel_size_um": report.pixel_size_um,
        }

    def _timeout_reason(
        self,
        sid: str,
        pattern: str,
        marker: str | None,
        accepted: Mapping[str, Any],
        watches: Mapping[str, _Watch],
        others: set[str],
    ) -> str:
        """Names the folder, the pattern, what was found and what is missing (``marker``: None if not missing)."""
        opts = self.options
        found = [f"{n} (complete)" for n in sorted(accepted)]
        found += [
            f"{n} ({w.signature[0]} bytes, {'does not parse: ' + w.error if w.error else 'still being written'})"
            for n, w in sorted(watches.items())
        ]
        if others:
            found.append(f"{len(others)} file(s) already taken by other samples ({', '.join(sorted(others)[:3])})")
        missing = []
        if len(accepted) < opts.min_files:
            missing.append(f"{opts.min_files - len(accepted)} more complete file(s) (min_files={opts.min_files})")
        if watches:
            missing.append(f"{len(watches)} file(s) to finish writing")
        if marker is not None:
            missing.append(f"the done marker {marker!r}")
        return (
            f"timed out after {opts.timeout_s:g} s waiting for sample {sid!r} in folder {self.folder}, pattern "
            f"{pattern!r}: found {', '.join(found) or 'nothing'}; missing {'; '.join(missing) or 'nothing'}"
        )

    # --- files ---------------------------------------------------------------------------------------
    def _request_name(self, sample: Sample) -> str:
        sid = sample.sample_id
        if sid in ("", ".", "..") or "/" in sid or "\x00" in sid:
            raise PatternError(f"sample id {sid!r} cannot be part of a file name for request_file")
        return sid + REQUEST_SUFFIX

    def _write_request(self, name: str, sample: Sample, pattern: str, marker: str | None) -> None:
        """``{sample_id}.request.json``: what to image next, for the operator or the acquisition software."""
        body = {
            "sample_id": sample.sample_id,
            "key": sample.key,
            "campaign": self.placeholders(sample)["campaign"],
            "conditions": dict(sample.conditions),
            "pattern": pattern,
            "done_marker": marker,
            "min_files": self.options.min_files,
            "max_files": self.options.max_files,
            "requested_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        text = json.dumps(body, indent=2, sort_keys=True, default=_plain)
        tmp = self.folder / f".{name}.part"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.folder / name)

    def _micrograph(self, record: Mapping[str, Any]) -> Micrograph:
        meta = {"instrument": "folder-microscope", "folder": str(self.folder), **record}
        return Micrograph(Path(record["path"]), self.options.pixel_size_um, meta)


def _plain(value: Any) -> Any:
    """numpy scalars (and anything else JSON lacks) as plain values for the request file."""
    return value.item() if hasattr(value, "item") else str(value)
