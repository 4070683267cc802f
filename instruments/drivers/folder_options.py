"""Options of ``folder-microscope`` and the expansion of its file-name patterns for one sample.

A pattern such as ``"{sample_id}_*.tif"`` is a glob relative to the watched folder whose ``{placeholders}`` are
filled from the sample; the filled-in values are glob-escaped, so a sample id like ``A*[1]`` matches itself only.
"""

from __future__ import annotations

import glob
import string
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_FORMATTER = string.Formatter()
#: placeholders every sample provides (``index`` only when the synthesizer reports one in ``attributes``)
BUILTIN_FIELDS = ("sample_id", "key", "campaign", "index")


class PatternError(ValueError):
    """A pattern that cannot be filled in for a sample; the message names the placeholder and what is valid."""


def pattern_fields(pattern: str) -> list[str]:
    """The placeholder names in ``pattern``; ``ValueError`` for anything but ``{name}`` or ``{name:format}``."""
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(pattern))
    except ValueError as exc:
        raise ValueError(f"pattern {pattern!r}: {exc} (write a literal brace as '{{{{' or '}}}}')") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or conversion is not None or (spec and "{" in spec):
            raise ValueError(
                f"pattern {pattern!r}: placeholder {{{name}{'!' + conversion if conversion else ''}}} is not allowed; "
                "use {name} or {name:format}, e.g. {sample_id} or {anneal_temperature:.0f}"
            )
        names.append(name)
    return names


def check_relative_glob(pattern: str) -> None:
    """A pattern must stay inside the watched folder: relative, no '..' parts."""
    p = PurePosixPath(pattern.replace("\\", "/"))
    if p.is_absolute() or pattern.startswith("~"):
        raise ValueError(f"pattern {pattern!r} must be relative to the folder, e.g. '{{sample_id}}_*.tif'")
    if ".." in p.parts:
        raise ValueError(f"pattern {pattern!r} must not leave the folder ('..')")


def expand(pattern: str, values: Mapping[str, Any]) -> str:
    """``pattern`` with each placeholder replaced by its glob-escaped value from ``values``.

    Raises ``PatternError`` when a placeholder has no value, or a value is empty, '.', '..' or holds a path
    separator (it would match other samples' files or leave the folder)."""
    out: list[str] = []
    for literal, name, spec, _conversion in _FORMATTER.parse(pattern):
        out.append(literal)
        if name is None:
            continue
        if name not in values:
            raise PatternError(
                f"pattern {pattern!r}: this sample has no value for {{{name}}}; available: {', '.join(sorted(values))}"
            )
        try:
            text = format(values[name], spec or "")
        except (ValueError, TypeError) as exc:
            raise PatternError(
                f"pattern {pattern!r}: cannot format {name}={values[name]!r} as {spec!r}: {exc}"
            ) from None
        if text in ("", ".", "..") or "/" in text or "\x00" in text:
            raise PatternError(
                f"pattern {pattern!r}: {name}={text!r} cannot be part of a file name "
                "(empty, '.', '..', or holds '/' or NUL)"
            )
        out.append(glob.escape(text))
    return "".join(out)


class FolderOptions(BaseModel):
    """Options of ``folder-microscope`` as written in a campaign."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    folder: Path = Field(description="folder the microscope PC writes into; absolute (a mounted share is fine)")
    pattern: str = Field(
        default="{sample_id}_*.tif",
        min_length=1,
        description="glob of one sample's files, relative to folder; placeholders {sample_id}, {key}, {campaign}, "
        "{index} (when the synthesizer reports one) and condition names, e.g. '{sample_id}_*.tif'",
    )
    min_files: int = Field(default=1, ge=1, le=10_000, description="files a sample needs before it is imaged")
    max_files: int | None = Field(default=None, ge=1, le=10_000, description="stop after this many files")
    done_marker: str | None = Field(
        default=None, min_length=1, description="file the acquisition software writes when a sample's session ends"
    )
    stable_for_s: float = Field(default=3.0, ge=0, le=3600, description="size and mtime unchanged this long")
    poll_s: float = Field(default=0.5, gt=0, le=60, description="how often the folder is listed")
    timeout_s: float = Field(default=3600.0, gt=0, description="overall wait for one sample's files")
    truncated_grace_s: float = Field(
        default=60.0, ge=0, description="how long a stable file that does not parse is retried before it fails"
    )
    request_file: bool = Field(default=False, description="write {sample_id}.request.json for the operator")
    copy_to_workdir: bool = Field(
        default=True, description="copy accepted files into the agent's work folder (the PC may delete its own)"
    )
    pixel_size_um: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="µm per pixel; default: read from each file"
    )
    min_free_gb: float = Field(default=1.0, ge=0, description="ping reports unhealthy below this free space")

    @field_validator("folder")
    @classmethod
    def _absolute(cls, folder: Path) -> Path:
        folder = folder.expanduser()
        if not folder.is_absolute():
            raise ValueError(f"folder {str(folder)!r} must be an absolute path, e.g. /mnt/sem-pc/export")
        return folder

    @field_validator("pattern", "done_marker")
    @classmethod
    def _pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        names = pattern_fields(pattern)
        check_relative_glob(pattern)
        if not names:
            raise ValueError(
                f"pattern {pattern!r} names no placeholder, so every sample would take any file; "
                "include one that tells samples apart, e.g. '{sample_id}_*.tif'"
            )
        return pattern

    @model_validator(mode="after")
    def _counts(self) -> FolderOptions:
        if self.max_files is not None and self.max_files < self.min_files:
            raise ValueError(f"max_files ({self.max_files}) is below min_files ({self.min_files})")
        return self
