"""Instrument seams (synthesizer, imager, characterizer), their typed results and the plug-in registry."""

from instruments.base import (
    Characterizer,
    Imager,
    InstrumentError,
    Measurement,
    Micrograph,
    PermanentFault,
    RequestState,
    RequestStatus,
    Sample,
    SynthesisRequest,
    Synthesizer,
    TransientFault,
)
from instruments.registry import InstrumentSpecError, available, load_instrument

__all__ = [
    "Characterizer",
    "Imager",
    "InstrumentError",
    "InstrumentSpecError",
    "Measurement",
    "Micrograph",
    "PermanentFault",
    "RequestState",
    "RequestStatus",
    "Sample",
    "SynthesisRequest",
    "Synthesizer",
    "TransientFault",
    "available",
    "load_instrument",
]
