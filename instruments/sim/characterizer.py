"""``SimTester``: a simulated mechanical/thermal test bench measuring a sample's true properties with noise.

Each property gets Gaussian noise of a realistic relative size (2–5 %) and, rarely, a gross outlier (a
slipped extensometer, a bad indent) that the reported σ does not cover, as in a real lab. Ceramic strength is
the mean of several bars broken from a Weibull distribution. The product of strength and elongation is
computed from the two measured values, with its σ propagated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from math import gamma
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from instruments.base import Measurement, PermanentFault, Sample, TransientFault
from instruments.registry import InstrumentContext
from instruments.sim.seeding import rng_for
from instruments.sim.systems import SYSTEMS, get_system
from instruments.sim.systems.porous_ceramic import WEIBULL_MODULUS

SOURCE = "sim-tester"


class TesterOptions(BaseModel):
    """Options of ``sim-tester`` as written in a campaign."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    system: str = Field(default="two_phase_alloy", description=f"material system: one of {', '.join(SYSTEMS)}")
    noise: dict[str, float] = Field(default_factory=dict, description="relative σ per property (overrides)")
    outlier_probability: float = Field(default=0.01, ge=0, le=1, description="chance a value is a gross outlier")
    outlier_scale: float = Field(default=5.0, ge=0, description="outlier size in units of the stated σ")
    duration_h: float = Field(default=1.0, ge=0, description="lab time to prepare and test one sample")
    failure_probability: float = Field(default=0.0, ge=0, le=1, description="a test fails and must be repeated")
    specimens: int = Field(default=5, ge=1, le=30, description="bars broken per sample for a Weibull strength")

    @field_validator("system")
    @classmethod
    def _known(cls, name: str) -> str:
        get_system(name)
        return name

    @model_validator(mode="after")
    def _noise_names(self) -> TesterOptions:
        outputs = get_system(self.system).outputs
        unknown = [k for k in self.noise if k not in outputs]
        if unknown:
            raise ValueError(f"noise given for {unknown}, which {self.system} does not have; valid: {list(outputs)}")
        if any(v < 0 for v in self.noise.values()):
            raise ValueError("relative noise must be >= 0")
        return self


class SimTester:
    """Characterizer protocol: noisy measurements of a simulated sample's true properties."""

    simulated: ClassVar[bool] = True

    def __init__(self, *, context: InstrumentContext, **options: Any) -> None:
        self.options = TesterOptions(**options)
        self.context = context
        self.system = get_system(self.options.system)
        self._attempts: dict[str, int] = {}

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        TesterOptions.model_validate(dict(options))

    @classmethod
    def outputs(cls, options: Mapping[str, Any]) -> dict[str, str]:
        """Property names and units this tester measures for its system."""
        return dict(get_system(TesterOptions.model_validate(dict(options)).system).outputs)

    def relative_noise(self, name: str) -> float:
        return float(self.options.noise.get(name, self.system.relative_noise.get(name, 0.03)))

    async def measure(self, sample: Sample) -> list[Measurement]:
        truth = sample.truth
        if truth is None:
            raise PermanentFault("the sample carries no ground truth to measure", code="no_truth")
        made_as = truth.get("system", (sample.attributes or {}).get("system"))
        if made_as != self.system.name:
            raise PermanentFault(
                f"sample is {made_as!r}, the tester is set up for {self.system.name!r}", code="wrong_system"
            )
        await asyncio.sleep(self.options.duration_h * 3600.0)
        attempt = self._attempts[sample.sample_id] = self._attempts.get(sample.sample_id, 0) + 1
        rng = rng_for(self.context.seed, sample.sample_id, "tester", attempt)
        if rng.random() < self.options.failure_probability:
            raise TransientFault("the specimen slipped in the grips: test invalid", code="test_failed")
        out: dict[str, Measurement] = {}
        for name, unit in self.system.outputs.items():
            if name == "strength_ductility" or name not in truth:
                continue
            if name == "flexural_strength":
                out[name] = self._weibull(float(truth[name]), unit, rng)
            else:
                out[name] = self._gauss(name, float(truth[name]), unit, rng)
        if "strength_ductility" in self.system.outputs and {"yield_strength", "elongation"} <= out.keys():
            y, e = out["yield_strength"], out["elongation"]
            value = y.value * e.value / 1000.0
            rel = np.hypot(y.sigma / max(abs(y.value), 1e-12), e.sigma / max(abs(e.value), 1e-12))
            out["strength_ductility"] = Measurement(
                "strength_ductility", value, abs(value) * float(rel), self.system.outputs["strength_ductility"], SOURCE
            )
        return [out[k] for k in self.system.outputs if k in out]

    def _gauss(self, name: str, true: float, unit: str, rng: np.random.Generator) -> Measurement:
        rel = self.relative_noise(name)
        sigma = rel * abs(true)
        value = true + sigma * rng.standard_normal()
        if rng.random() < self.options.outlier_probability:
            value += self.options.outlier_scale * sigma * rng.choice([-1.0, 1.0]) * (1.0 + rng.random())
        if name == "relative_density":
            value = min(value, 1.0)
        return Measurement(name, float(value), float(max(rel * abs(value), 1e-12)), unit, SOURCE)

    def _weibull(self, true_mean: float, unit: str, rng: np.random.Generator) -> Measurement:
        m = WEIBULL_MODULUS
        n = self.options.specimens
        scale = true_mean / gamma(1.0 + 1.0 / m)
        bars = scale * rng.weibull(m, size=n)
        value = float(bars.mean())
        sigma = float(bars.std(ddof=1) / np.sqrt(n)) if n > 1 else value / m
        return Measurement("flexural_strength", value, sigma, unit, SOURCE)
