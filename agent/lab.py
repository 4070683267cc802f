"""The instruments and image analyzer a campaign runs with."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from imaging.base import ImageAnalyzer
from instruments.base import Characterizer, Imager, Synthesizer

log = logging.getLogger("matloop.lab")


@dataclass
class Lab:
    synthesizer: Synthesizer
    imager: Imager | None = None
    characterizer: Characterizer | None = None
    analyzer: ImageAnalyzer | None = None
    overlays: bool = True  # keep a segmentation overlay PNG per analyzed frame

    async def aclose(self) -> None:
        """Releases the instruments' connections (``aclose()`` or ``close()`` where a driver has one); a driver
        that fails to close is logged, not raised, so the campaign's outcome stands."""
        for part in (self.synthesizer, self.imager, self.characterizer):
            try:
                if callable(closer := getattr(part, "aclose", None)):
                    await closer()
                elif callable(closer := getattr(part, "close", None)):
                    closer()
            except Exception:  # a driver bug at close must not turn a finished campaign into a failed one
                log.warning("closing %s failed", type(part).__name__, exc_info=True)

    @property
    def simulated(self) -> bool:
        """True when every instrument runs on simulated time (then the loop may run on a virtual clock)."""
        parts = [self.synthesizer, self.imager, self.characterizer]
        return all(getattr(p, "simulated", False) for p in parts if p is not None)
