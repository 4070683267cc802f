"""Instrument seams (synthesizer, imager, characterizer), their typed results and the plug-in registry."""

from instruments.base import (
    Characterizer,
    Health,
    Imager,
    InstrumentError,
    Measurement,
    Micrograph,
    PermanentFault,
    Pingable,
    RequestState,
    RequestStatus,
    Sample,
    SynthesisRequest,
    Synthesizer,
    TransientFault,
    WireDescriber,
)
from instruments.registry import InstrumentSpecError, available, load_instrument
from instruments.safety import HardLimit, HardLimits, Limited, LimitViolation

__all__ = [
    "Characterizer",
    "HardLimit",
    "HardLimits",
    "Health",
    "Imager",
    "InstrumentError",
    "InstrumentSpecError",
    "LimitViolation",
    "Limited",
    "Measurement",
    "Micrograph",
    "PermanentFault",
    "Pingable",
    "RequestState",
    "RequestStatus",
    "Sample",
    "SynthesisRequest",
    "Synthesizer",
    "TransientFault",
    "WireDescriber",
    "available",
    "load_instrument",
]
