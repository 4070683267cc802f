"""A pressed oxide powder (alumina-like) hot-pressed: densification, grain growth with pore drag, trapped gas.

Constants are typical of submicron alumina (T in K, R = 8.314 J/(mol·K)); a = ``particle_size`` (µm),
b = ``binder_fraction``, P = ``pressure`` (MPa), t = ``hold_time`` (s in Θ).

Green body
  packing        ρ_g = 0.64 − 0.16·exp(−a/0.5 µm) + 0.04·(b/0.03)·exp(1 − b/0.03)   (binder lubricates, ≤ 3 %)
Densification: master sintering curve (Su & Johnson 1996), heating at 10 K/min then holding
  work of sintering  Θ = exp(−Q_d/RT)/T · (t + RT²/(Q_d·β)),  Q_d = 440 kJ/mol
  Herring scaling and pressure assistance  Θ_eff = Θ·(1 µm/a)³·(1 + P/Σ),  sintering stress Σ = 2 MPa·(1 µm/a)
  density            ρ = ρ_g + (ρ_max − ρ_g)/(1 + exp(−(ln Θ_eff + 32.0)/1.0))
  trapped gas        v_g = 0.003 + 0.5·b·(P/40 MPa)²   (pressure seals pores before the binder has burnt out)
                     ρ_max = 1 − v_g; once pores close the gas pores coarsen and swell (over-firing):
                     p_swell = v_g·(t/4 h)·exp(−Q_b/R·(1/T − 1/1723 K))·s_closed,  Q_b = 200 kJ/mol,
                     s_closed = logistic((ρ − 0.92)/0.01)
  porosity           p = 1 − ρ + p_swell
Grain growth (cubic, pore drag)  d³ = a³ + K_g·exp(−Q_g/RT)·(t + RT²/(Q_g·β))/(1 + ((1 − ρ)/0.05)²)
                     K_g = 40 µm³/h at 1500 °C, Q_g = 520 kJ/mol (> Q_d: hotter coarsens more per unit of
                     densification); pores r_p = 0.35·d·(0.4 + p)
Properties
  elastic modulus    E = 400 GPa·exp(−3.0·p)                                   (Spriggs; b_E ≈ 3 for alumina)
  conductivity       k = k_s·2(1 − p)/(2 + p) (Maxwell–Eucken, insulating pores), 1/k_s = 1/33 W/(m·K) + R_K/d,
                     R_K = 1e−8 m²K/W (grain-boundary Kapitza resistance)
  fracture (Griffith)  σ_f = K_Ic·exp(−4p)/(Y·√(π·c)),  K_Ic = 4 MPa·√m, Y = 1.3,
                     flaw c = 5 µm + 15 µm·exp(−b/0.01) + 3d + 25 µm·exp(−a/0.15 µm) + 2a + 3·r_p + 400 µm·p_swell
                     (machining, pressing laminations without a binder, grain facets, hard agglomerates of
                     fine powders, packing flaws, pores, swollen gas pores);
                     the tester breaks 5 bars with Weibull modulus 10.
Failures: ``bloated`` with probability logistic(ln(p_swell/0.03)/0.15) (over-firing with gas trapped);
``cracked`` when binder burnout cracks a fine, impermeable compact, probability
logistic(ln(b/b_c)/0.2), b_c = 0.05·√(a/0.3 µm), or an under-sintered compact of coarse powder falls apart,
logistic((0.02 − (ρ − ρ_g))/0.005)·logistic((a − 3 µm)/0.4 µm). Grains over 30 µm microcrack on cooling
(thermal expansion anisotropy).
Sample-to-sample variation: furnace ±5 K, time ±1 %, pressure ±0.3 MPa, powder size ±3 %, binder ±0.001.

Objective ``flexural_strength`` (MPa), as an expected value (times the chance that the sample survives).
Density wants heat, time and pressure; grain growth, trapped gas and agglomerates punish each in excess, so
the optimum (``optimum()``, checked by the tests) is interior: 1299 °C, 1.18 h, 20.7 MPa, 0.51 µm powder,
binder 0.029 → 477 MPa (97.9 % dense, 0.84 µm grains, E ≈ 375 GPa, k ≈ 23 W/(m·K)).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from instruments.sim.systems.base import Failure, InputSpec, MaterialSystem, Optimum, Outcome
from instruments.sim.systems.optimize import maximize

NAME = "porous_ceramic"
R = 8.314
HEATING_K_PER_S = 10.0 / 60.0
Q_D = 440e3  # densification (MSC of alumina)
Q_G = 520e3  # grain growth
Q_B = 200e3  # swelling of trapped gas

INPUTS = (
    InputSpec("sinter_temperature", "degC", 1100.0, 1700.0, doc="sintering (hold) temperature"),
    InputSpec("hold_time", "h", 0.25, 10.0, log=True, doc="time at the sintering temperature"),
    InputSpec("pressure", "MPa", 0.0, 50.0, doc="uniaxial hot-pressing pressure"),
    InputSpec("particle_size", "um", 0.1, 5.0, log=True, doc="median powder particle size"),
    InputSpec("binder_fraction", "1", 0.0, 0.1, doc="organic binder mass fraction in the green body"),
)
OUTPUTS = {
    "elastic_modulus": "GPa",
    "thermal_conductivity": "W/(m*K)",
    "flexural_strength": "MPa",
    "relative_density": "1",
}
RELATIVE_NOISE = {
    "elastic_modulus": 0.02,
    "thermal_conductivity": 0.04,
    "flexural_strength": 0.0,  # from the Weibull scatter of the bars
    "relative_density": 0.003,
}
WEIBULL_MODULUS = 10.0

Array = NDArray[np.float64]


def _arr(x: ArrayLike) -> Array:
    return np.asarray(x, dtype=np.float64)


def _logistic(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def work_of_sintering(temp_k: Array, t_s: Array, q: float) -> Array:
    """Θ (s/K) of a hold of ``t_s`` at ``temp_k`` plus the 10 K/min ramp to it (Arrhenius, activation ``q``)."""
    return np.exp(-q / (R * temp_k)) / temp_k * (t_s + R * temp_k**2 / (q * HEATING_K_PER_S))


def model(
    sinter_temperature: ArrayLike,
    hold_time: ArrayLike,
    pressure: ArrayLike,
    particle_size: ArrayLike,
    binder_fraction: ArrayLike,
    *,
    agglomerate_factor: ArrayLike = 1.0,
) -> dict[str, Array]:
    """Noise-free microstructure and properties; inputs broadcast (vectorized over candidates)."""
    tk = _arr(sinter_temperature) + 273.15
    t_s = _arr(hold_time) * 3600.0
    p_mpa, a, b = np.maximum(_arr(pressure), 0.0), _arr(particle_size), np.maximum(_arr(binder_fraction), 0.0)
    rho_g = 0.64 - 0.16 * np.exp(-a / 0.5) + 0.04 * (b / 0.03) * np.exp(1.0 - b / 0.03)
    theta = work_of_sintering(tk, t_s, Q_D) * a**-3.0 * (1.0 + p_mpa / (2.0 / a))
    v_gas = 0.003 + 0.5 * b * (p_mpa / 40.0) ** 2
    s = 1.0 / (1.0 + np.exp(-(np.log(theta) + 32.0)))
    rho = rho_g + (1.0 - v_gas - rho_g) * s
    closed = _logistic((rho - 0.92) / 0.01)
    p_swell = v_gas * t_s / (4 * 3600.0) * np.exp(-Q_B / R * (1.0 / tk - 1.0 / 1723.15)) * closed
    p = np.clip(1.0 - rho + p_swell, 0.0, 0.95)
    k_g = 40.0 / 3600.0 * np.exp(Q_G / (R * 1773.15))  # µm³/s ·exp(−Q/RT) → 40 µm³/h at 1500 °C
    growth = k_g * work_of_sintering(tk, t_s, Q_G) * tk / (1.0 + ((1.0 - rho) / 0.05) ** 2)
    d = np.cbrt(a**3 + growth)
    r_pore = 0.35 * d * (0.4 + p)
    e_mod = 400.0 * np.exp(-3.0 * p)
    k_s = 1.0 / (1.0 / 33.0 + 0.01 / d)
    k_th = k_s * 2.0 * (1.0 - p) / (2.0 + p)
    flaw = (
        5.0
        + 15.0 * np.exp(-b / 0.01)
        + 3.0 * d
        + 25.0 * _arr(agglomerate_factor) * np.exp(-a / 0.15)
        + 2.0 * a
        + 3.0 * r_pore
        + 400.0 * p_swell
    )
    strength = 4.0 * np.exp(-4.0 * p) / (1.3 * np.sqrt(np.pi * flaw * 1e-6))
    p_bloat = _logistic(np.log(np.maximum(p_swell, 1e-12) / 0.03) / 0.15)
    b_c = 0.05 * np.sqrt(a / 0.3)
    p_burnout = _logistic(np.log(np.maximum(b, 1e-9) / b_c) / 0.2)
    p_weak = _logistic((0.02 - (rho - rho_g)) / 0.005) * _logistic((a - 3.0) / 0.4)
    return {
        "green_density": rho_g,
        "porosity": p,
        "relative_density": 1.0 - p,
        "swelling_porosity": p_swell,
        "trapped_gas": v_gas,
        "grain_size_um": d,
        "pore_radius_um": r_pore,
        "critical_flaw_um": flaw,
        "elastic_modulus": e_mod,
        "thermal_conductivity": k_th,
        "flexural_strength": strength,
        "bloat_probability": p_bloat,
        "crack_probability": 1.0 - (1.0 - p_burnout) * (1.0 - p_weak),
    }


def survival_probability(m: Mapping[str, Array]) -> Array:
    """Chance that a sample neither bloats nor cracks."""
    return (1.0 - m["bloat_probability"]) * (1.0 - m["crack_probability"])


def _expected(name: str) -> Any:
    def objective(**conditions: Any) -> Array:
        m = model(**conditions)
        return m[name] * survival_probability(m)

    objective.__doc__ = (
        f"Noise-free expected {name} ({OUTPUTS[name]}) of a requested sample: the model value times the "
        "chance that the sample survives (a failed sample scores zero)."
    )
    return objective


OBJECTIVES = {name: _expected(name) for name in OUTPUTS}


def outcome(conditions: Mapping[str, Any], rng: np.random.Generator) -> Outcome:
    """One sample: the set point plus process scatter, its true microstructure and properties, or its failure."""
    tc = float(conditions["sinter_temperature"]) + rng.normal(0.0, 5.0)
    t_h = float(conditions["hold_time"]) * (1.0 + rng.normal(0.0, 0.01))
    p_mpa = max(float(conditions["pressure"]) + rng.normal(0.0, 0.3), 0.0)
    a = float(conditions["particle_size"]) * float(np.exp(rng.normal(0.0, 0.03)))
    b = max(float(conditions["binder_fraction"]) + rng.normal(0.0, 0.001), 0.0)
    m = model(tc, t_h, p_mpa, a, b, agglomerate_factor=float(np.exp(rng.normal(0.0, 0.1))))
    truth: dict[str, Any] = {k: float(v) for k, v in m.items()}
    d = truth["grain_size_um"]
    truth |= {
        "system": NAME,
        "actual_sinter_temperature": tc,
        "actual_hold_time": t_h,
        "actual_pressure": p_mpa,
        "actual_particle_size": a,
        "actual_binder_fraction": b,
        "grain_size_sigma_ln": 0.3 + 0.15 * float(_logistic(np.asarray((d - 5.0) / 2.0))),
        "second_phase_fraction": 0.0,
        "particle_radius_um": 0.0,
        "crack_density_per_mm2": 400.0 * float(_logistic(np.asarray((d - 30.0) / 4.0))),
        "crack_length_um": 2.0 * d,
    }
    if rng.random() < truth["bloat_probability"]:
        return Outcome(
            truth,
            Failure(
                "bloated",
                f"bloated: gas trapped in closed pores swelled at {tc:.0f} °C (binder {b:.3f}, {p_mpa:.0f} MPa)",
            ),
        )
    if rng.random() < truth["crack_probability"]:
        return Outcome(
            truth,
            Failure(
                "cracked",
                f"cracked during binder burnout or handling (binder {b:.3f}, "
                f"particles {a:.2g} µm, density {truth['relative_density']:.2f})",
            ),
        )
    return Outcome(truth)


def process_time_s(conditions: Mapping[str, Any]) -> float:
    """Binder burnout (1 h), ramp at 10 K/min, hold, furnace cooling at 5 K/min."""
    tc = float(conditions["sinter_temperature"])
    return 3600.0 + (tc - 25.0) * 6.0 + float(conditions["hold_time"]) * 3600.0 + (tc - 25.0) * 12.0


def optimum(objective: str = "flexural_strength", *, seed: int = 0, maxiter: int = 300) -> Optimum:
    """Numerical global maximum of a noise-free objective (differential evolution)."""
    return maximize(INPUTS, OBJECTIVES[objective], objective, seed=seed, maxiter=maxiter)


SYSTEM = MaterialSystem(
    name=NAME,
    inputs=INPUTS,
    outputs=OUTPUTS,
    outcome=outcome,
    objectives=OBJECTIVES,
    process_time_s=process_time_s,
    optimum=optimum,
    default_pixel_size_um=0.1,
    relative_noise=RELATIVE_NOISE,
)
