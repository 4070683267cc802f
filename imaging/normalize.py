"""Intensity normalization as a small serializable object, so that a trained model can store the one it used."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator


class PercentileStretch(BaseModel):
    """Maps intensities linearly so that the ``low_pct`` percentile goes to 0 and ``high_pct`` to 1, then clips.

    Unfitted (``low``/``high`` unset) it stretches each image by its own percentiles, which removes brightness and
    contrast differences between frames; ``fit`` freezes the bounds of a reference set, as a trained model needs.
    Serialize with ``model_dump()`` and restore with ``PercentileStretch.model_validate(d)``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["percentile_stretch"] = "percentile_stretch"
    version: Literal[1] = 1
    low_pct: float = Field(default=0.5, ge=0.0, lt=100.0)
    high_pct: float = Field(default=99.5, gt=0.0, le=100.0)
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _check(self) -> PercentileStretch:
        if self.low_pct >= self.high_pct:
            raise ValueError(f"low_pct ({self.low_pct}) must be below high_pct ({self.high_pct})")
        if (self.low is None) != (self.high is None):
            raise ValueError("low and high are set together (a fitted stretch) or not at all")
        if self.low is not None and self.high is not None and not (np.isfinite(self.low) and np.isfinite(self.high)):
            raise ValueError("low and high must be finite")
        return self

    @property
    def fitted(self) -> bool:
        return self.low is not None

    def bounds(self, image: NDArray[np.floating] | NDArray[np.integer]) -> tuple[float, float]:
        """The (low, high) intensities this stretch maps to 0 and 1 for ``image``."""
        if self.low is not None and self.high is not None:
            return self.low, self.high
        finite = np.asarray(image, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            return 0.0, 1.0
        lo, hi = np.percentile(finite, [self.low_pct, self.high_pct])
        return float(lo), float(hi)

    def fit(self, images: NDArray[np.floating] | list[NDArray[np.floating]]) -> PercentileStretch:
        """A copy with ``low``/``high`` fixed to the percentiles of all pixels of ``images``."""
        stack = [images] if isinstance(images, np.ndarray) else list(images)
        pixels = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in stack])
        lo, hi = PercentileStretch(low_pct=self.low_pct, high_pct=self.high_pct).bounds(pixels)
        return self.model_copy(update={"low": lo, "high": hi})

    def transform(self, image: NDArray[np.floating] | NDArray[np.integer]) -> NDArray[np.float32]:
        """``image`` stretched to float32 in [0, 1]; monotone non-decreasing; NaN maps to 0; a flat image to 0."""
        lo, hi = self.bounds(image)
        data = np.asarray(image, dtype=np.float64)
        span = hi - lo
        # a flat reference (span 0) becomes a step at lo: still monotone and in [0, 1]
        out = (data - lo) / span if np.isfinite(span) and span > 0 else (data > lo).astype(np.float64)
        out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
