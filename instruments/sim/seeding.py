"""Deterministic random streams: a generator per (seed, key, purpose), hashed with SHA-256 (never ``hash()``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def derive_seed(*parts: Any) -> int:
    """A 128-bit integer that depends only on ``parts`` (JSON-encoded, key order independent)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "little")


def rng_for(*parts: Any) -> np.random.Generator:
    """A numpy generator seeded by ``derive_seed(*parts)``: same parts, same stream, on any machine."""
    return np.random.default_rng(derive_seed(*parts))


def short_hash(*parts: Any, length: int = 12) -> str:
    """A short hex digest of ``parts`` for file and sample names."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]
