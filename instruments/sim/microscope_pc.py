"""``MicroscopePC``: the simulated twin of a microscope PC whose acquisition software saves TIFF files into a folder.

It images a sample with ``SimSEM`` (ground truth from the sample, or from its conditions through the material
system), and saves each frame the way acquisition software does: under its final name, slowly, in chunks, so
that a half-written file exists for a while; then, optionally, a done marker. The metadata style is that of a
real instrument: ``resolution`` (resolution tags in pixels per cm, no pixel size in the description), ``fei``
(an FEI/Thermo ``[Scan] PixelWidth`` header, no resolution) or ``sim`` (as ``SimSEM`` writes: both).

Faults, per sample id (``faults``) or per call: ``truncated`` (the file stops growing before it is complete),
``nothing`` (no file at all), ``no_scale`` (a complete TIFF without any pixel size). Run it as an asyncio task
(``serve``) or a thread (``serving_in_thread``) that answers ``{sample_id}.request.json`` files, or call
``image``/``image_sample`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import tempfile
import threading
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import tifffile

from instruments.base import Sample
from instruments.registry import InstrumentContext
from instruments.sim.microscope import SimSEM
from instruments.sim.seeding import rng_for
from instruments.sim.systems import condition_problems, get_system

Fault = Literal["truncated", "nothing", "no_scale"]
Style = Literal["resolution", "fei", "sim"]
REQUEST_SUFFIX = ".request.json"
T = TypeVar("T")


class MicroscopePC:
    """Writes micrographs of samples into ``folder`` as a microscope's acquisition software would."""

    def __init__(
        self,
        folder: Path,
        *,
        seed: int = 0,
        system: str = "two_phase_alloy",
        naming: str = "{sample_id}_{index:03d}.tif",
        frames: int = 1,
        size_px: int = 256,
        pixel_size_um: float | None = None,
        style: Style = "resolution",
        chunk_bytes: int = 32_768,
        chunk_delay_s: float = 0.05,
        done_marker: str | None = None,
        faults: Mapping[str, Fault] | None = None,
        truncate_fraction: float = 0.6,
        sem_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not 0.0 < truncate_fraction < 1.0:
            raise ValueError(f"truncate_fraction must be in (0, 1), got {truncate_fraction}")
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
        self.folder = Path(folder)
        self.seed, self.system, self.naming, self.frames = seed, system, naming, frames
        self.size_px, self.pixel_size_um, self.style = size_px, pixel_size_um, style
        self.chunk_bytes, self.chunk_delay_s, self.done_marker = chunk_bytes, chunk_delay_s, done_marker
        self.faults: dict[str, Fault] = dict(faults or {})
        self.truncate_fraction = truncate_fraction
        self.sem_options: dict[str, Any] = {"focus_failure_probability": 0.0, **(sem_options or {})}
        get_system(system)
        self.served: dict[str, list[Path]] = {}  # sample id -> files written (complete or not)
        self.pixel_sizes: dict[Path, float] = {}  # file -> its true pixel size (µm)
        self.requests: list[dict[str, Any]] = []  # request files answered, in order
        self.errors: list[str] = []  # why a requested sample could not be imaged

    # --- imaging ------------------------------------------------------------------------------------
    async def image_sample(self, sample: Sample, fault: Fault | None = None) -> list[Path]:
        """Images a made sample (its ground truth if it has one, else its conditions)."""
        return await self.image(
            sample.sample_id, conditions=sample.conditions, key=sample.key, truth=sample.truth, fault=fault
        )

    async def image(
        self,
        sample_id: str,
        *,
        conditions: Mapping[str, Any] | None = None,
        key: str = "",
        truth: Mapping[str, Any] | None = None,
        fault: Fault | None = None,
    ) -> list[Path]:
        """Renders and saves one sample's frames (slowly); returns the files written."""
        fault = fault or self.faults.get(sample_id)
        written: list[Path] = []
        self.served[sample_id] = written
        if fault == "nothing":
            return written
        frames = await asyncio.to_thread(self.render, sample_id, dict(conditions or {}), key, truth, fault)
        for name, data, px in frames:
            path = self.folder / name
            written.append(path)
            self.pixel_sizes[path] = px
            if fault == "truncated":  # the software dies mid-file: no more frames, no marker
                await self._write_slowly(path, data[: int(len(data) * self.truncate_fraction)])
                return written
            await self._write_slowly(path, data)
        if self.done_marker is not None:
            (self.folder / self.done_marker.format(sample_id=sample_id, key=key)).write_text("done\n")
        return written

    def render(
        self,
        sample_id: str,
        conditions: Mapping[str, Any],
        key: str,
        truth: Mapping[str, Any] | None,
        fault: Fault | None = None,
    ) -> list[tuple[str, bytes, float]]:
        """(file name, TIFF bytes, pixel size µm) per frame, rendered by ``SimSEM`` (blocking: run in a thread)."""
        truth = dict(truth) if truth is not None else self.truth_for(key, conditions)
        sample = Sample(sample_id, key, dict(conditions), 0.0, {"system": self.system}, truth)
        with tempfile.TemporaryDirectory(prefix="microscope-pc-") as tmp:
            sem = SimSEM(
                context=InstrumentContext(seed=self.seed, workdir=Path(tmp)),
                system=self.system,
                size_px=self.size_px,
                pixel_size_um=self.pixel_size_um,
                images_per_sample=self.frames,
                setup_time_s=0.0,
                field_time_s=0.0,
                **self.sem_options,
            )
            shots = _run_to_end(sem.acquire(sample))
            out = []
            for i, shot in enumerate(shots):
                px = float(shot.pixel_size_um or 0.0)
                data = self._styled(shot.path.read_bytes(), px, dict(shot.metadata), fault)
                out.append((self.naming.format(sample_id=sample_id, index=i, key=key), data, px))
            return out

    def truth_for(self, key: str, conditions: Mapping[str, Any]) -> dict[str, Any]:
        """The sample's microstructure from its conditions, as the furnace's material system makes it."""
        system = get_system(self.system)
        plain = {k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in conditions.items()}
        problems = condition_problems(system.inputs, plain)
        if problems:
            raise ValueError(f"cannot image a {self.system} sample with these conditions: {'; '.join(problems)}")
        cond_json = json.dumps(plain, sort_keys=True, default=str)
        return dict(system.outcome(plain, rng_for(self.seed, key, cond_json, "sample")).truth)

    def _styled(self, data: bytes, px: float, metadata: dict[str, Any], fault: Fault | None) -> bytes:
        """The frame re-saved in this PC's metadata style (or with no scale at all for the ``no_scale`` fault)."""
        if self.style == "sim" and fault != "no_scale":
            return data
        pixels = tifffile.imread(io.BytesIO(data))
        buf = io.BytesIO()
        common: dict[str, Any] = {"software": "matloop microscope-pc", "metadata": None}
        if fault == "no_scale":
            tifffile.imwrite(buf, pixels, description="SE2 image", **common)
        elif self.style == "fei":
            tifffile.imwrite(buf, pixels, extratags=[(34682, "s", 0, _fei_header(px, metadata), True)], **common)
        else:
            per_cm = 1e4 / px
            tifffile.imwrite(
                buf,
                pixels,
                resolution=(per_cm, per_cm),
                resolutionunit=tifffile.RESUNIT.CENTIMETER,
                description=f"SE2 image, HV {metadata.get('accelerating_voltage_kv', 15)} kV",
                **common,
            )
        return buf.getvalue()

    async def _write_slowly(self, path: Path, data: bytes) -> None:
        """Under the final name, chunk by chunk with a pause between: readers see it grow."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for start in range(0, len(data), self.chunk_bytes):
                if start:
                    await asyncio.sleep(self.chunk_delay_s)
                f.write(data[start : start + self.chunk_bytes])
                f.flush()

    # --- answering request files --------------------------------------------------------------------
    async def serve(self, *, poll_s: float = 0.05, stop: threading.Event | None = None) -> None:
        """Images each sample named by a ``*.request.json`` in the folder once, in order, until cancelled or
        ``stop`` is set. A request that cannot be imaged is noted in ``errors`` and left unanswered."""
        while stop is None or not stop.is_set():
            for path in sorted(self.folder.glob("*" + REQUEST_SUFFIX)):
                try:
                    request = json.loads(path.read_text(encoding="utf-8"))
                    sid = str(request["sample_id"])
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # gone already, or not ours
                if sid in self.served:
                    continue
                self.requests.append(request)
                try:
                    await self.image(sid, conditions=request.get("conditions") or {}, key=str(request.get("key", "")))
                except Exception as exc:  # a bad request must not stop the microscope PC
                    self.errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(poll_s)

    @contextlib.contextmanager
    def serving_in_thread(self, *, poll_s: float = 0.05) -> Iterator[MicroscopePC]:
        """Runs ``serve`` in a thread of its own (its own event loop) for the duration of the ``with`` block."""
        stop = threading.Event()
        thread = threading.Thread(
            target=lambda: asyncio.run(self.serve(poll_s=poll_s, stop=stop)), name="microscope-pc", daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=60)


def _run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to its end from synchronous code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _fei_header(px: float, metadata: Mapping[str, Any]) -> str:
    """An FEI/Thermo-style INI header (tag 34682) with the pixel size in metres, as tifffile parses it."""
    size = int(metadata.get("width_px", 0))
    lines = [
        "[User]",
        "User=supervisor",
        "",
        "[System]",
        "Type=SEM",
        "Software=matloop microscope-pc",
        "",
        "[Beam]",
        f"HV={float(metadata.get('accelerating_voltage_kv', 15.0)) * 1000:g}",
        "",
        "[Scan]",
        f"PixelWidth={px * 1e-6:.6e}",
        f"PixelHeight={px * 1e-6:.6e}",
        f"HorFieldsize={px * 1e-6 * size:.6e}",
        f"DwellTime={float(metadata.get('dwell_time_us', 1.0)) * 1e-6:.3e}",
        "",
        "[Stage]",
        f"WorkingDistance={float(metadata.get('working_distance_mm', 8.5)) * 1e-3:g}",
        "",
    ]
    return "\r\n".join(lines)
