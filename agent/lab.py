"""The instruments and image analyzer a campaign runs with."""

from __future__ import annotations

from dataclasses import dataclass

from imaging.base import ImageAnalyzer
from instruments.base import Characterizer, Imager, Synthesizer


@dataclass
class Lab:
    synthesizer: Synthesizer
    imager: Imager | None = None
    characterizer: Characterizer | None = None
    analyzer: ImageAnalyzer | None = None
    overlays: bool = True  # keep a segmentation overlay PNG per analyzed frame

    @property
    def simulated(self) -> bool:
        """True when every instrument runs on simulated time (then the loop may run on a virtual clock)."""
        parts = [self.synthesizer, self.imager, self.characterizer]
        return all(getattr(p, "simulated", False) for p in parts if p is not None)
