"""The campaign store (SQLModel on SQLite or PostgreSQL)."""

from agent.store.models import Artifact, Campaign, Event, Experiment, Measurement, Micrograph, Sample
from agent.store.store import ImageFile, MeasuredValue, Store

__all__ = [
    "Artifact",
    "Campaign",
    "Event",
    "Experiment",
    "ImageFile",
    "MeasuredValue",
    "Measurement",
    "Micrograph",
    "Sample",
    "Store",
]
