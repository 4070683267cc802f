"""Fault injection for simulated instruments: how often and when they misbehave, as a validated option."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FaultModel(BaseModel):
    """Probabilities per request, and windows of lab time (hours since the loop started) when it is down."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    failure_probability: float = Field(default=0.0, ge=0, le=1, description="run ruined by the furnace (permanent)")
    transient_fault_probability: float = Field(default=0.0, ge=0, le=1, description="busy or garbled reply (retry)")
    lost_sample_probability: float = Field(default=0.0, ge=0, le=1, description="sample lost in handling (permanent)")
    timeout_probability: float = Field(default=0.0, ge=0, le=1, description="the work is done but the reply times out")
    down_windows: tuple[tuple[float, float], ...] = Field(default=(), description="(start_h, end_h) of maintenance")

    @field_validator("down_windows")
    @classmethod
    def _ordered(cls, windows: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        for start, end in windows:
            if not 0 <= start < end:
                raise ValueError(f"a down window needs 0 <= start_h < end_h, got ({start}, {end})")
        return windows

    def down_at(self, lab_time_h: float) -> tuple[float, float] | None:
        """The window covering ``lab_time_h``, if any."""
        return next(((s, e) for s, e in self.down_windows if s <= lab_time_h < e), None)
