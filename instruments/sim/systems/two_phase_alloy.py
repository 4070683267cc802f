"""A cold-rolled binary alloy A–B: anneal (recrystallize, dissolve β, grow grains), then cool (precipitate).

Constants are typical of a ferritic steel strengthened by an intermetallic β (T in K, R = 8.314 J/(mol·K);
"at 900 °C" means the Arrhenius rate takes that value there). c = ``alloy_fraction``, Ṫ = ``cooling_rate``.

Phase diagram: β has composition c_β = 0.5
  solvus      c_s(T) = 3.0·exp(−41 kJ/mol / RT)         (0.011 at 600 °C, 0.045 at 900 °C, 0.083 at 1100 °C)
  lever rule  f_eq(T) = (c − c_s)/(c_β − c_s) for c > c_s, else 0
  solidus     T_sol(c) = 1230 °C − 1800 °C·c             (anneal above it: failure ``melted``)
Annealing at T for t; the hot-rolled strip holds all B as coarse β, f₀ = c/c_β, of radius r₀ = 0.5 µm
  recrystallization (JMAK)  X = 1 − exp(−(k_rx·t)^1.5),  k_rx = 2 h⁻¹ at 700 °C, Q = 280 kJ/mol, ÷(1 + c/0.02)
  dissolution               f_a = f_eq + (f₀ − f_eq)·exp(−k_d·t),  k_d = 1 h⁻¹ at 900 °C, Q = 230 kJ/mol
  ripening (LSW)            r³ − r₀³ = K_r·t, K_r = 0.5 µm³/h at 1000 °C, Q = 250 kJ/mol; r shrinks as (f_a/f₀)^⅓
  grain growth (n = 2)      d² − d_rx² = K_g·X·t,  K_g = 80 µm²/h at 950 °C, Q_g = 230 kJ/mol, ÷(1 + c_ss/0.02)
                            d_rx = 6 µm; growth capped by Zener pinning d_Z = 4r/(3f_eq)
Cooling: the time spent in the 250 K precipitation window is t_w = 250 K/Ṫ
  precipitation (JMAK)      f_cool = (c/c_β − f_a)·(1 − exp(−(0.05 s⁻¹·t_w)²))
  on grain boundaries       share 1/(1 + Ṫ/1 K/s) (slow cooling decorates boundaries: embrittling)
  size                      r_f = 5 nm·√(t_w/1 s);   solute left in solution c_ss = c − c_β·(f_a + f_cool)
Atmosphere: ``air`` grows an oxidized/decarburized layer δ = √(k_p·t), k_p = 0.7 µm²/s at 1000 °C,
  Q = 150 kJ/mol; ``argon`` a tenth of it (ppm O₂); ``vacuum`` evaporates solute, δ = √(k_v·t),
  k_v = 0.5 µm²/s at 1100 °C, Q = 300 kJ/mol. The layer keeps only σ₀ + Hall–Petch.
Strength (MPa): σ_y = σ₀ + k_HP·d^−½ + k_ss·c_ss^⅔ + √(Δσ_fine² + Δσ_coarse² + Δσ_cw²)
  σ₀ = 60, k_HP = 0.55 MPa·m^½, k_ss = 1100, Δσ_cw = 350·(1 − X) (work hardening not yet recrystallized);
  particles: Orowan Δσ_or = 0.4·M·G·b/(π√(1−ν))·ln(2r̄/b)/λ, λ = 2r̄(√(π/4f) − 1), r̄ = √(2/3)·r,
  M = 3.06, G = 80 GPa, b = 0.248 nm, ν = 0.29; shearing below r_x = 3 nm, Δσ_sh = Δσ_or(r_x)·√(r/r_x),
  combined as (Δσ_sh⁻² + Δσ_or⁻²)^−½. A layer δ on a 2 mm specimen: rule of mixtures across the thickness.
Hardness (Tabor): HV = 0.306·σ_y·(1 + n/2), n = 0.42·exp(−σ*/900 MPa); the indent senses the layer (~150 µm).
Ductility: elongation = 60 %·exp(−σ*/900 MPa)·exp(−(f_a + 3f_gb)/0.06)·(1 − 0.7(1 − X))·exp(−p/0.05),
  σ* = σ_y − ½·k_HP·d^−½ (grain refinement costs half the ductility of other strengthening):
  strength and ductility trade off, so the multi-objective problem is real; an air scale costs (1 − δ/h)
  more. Porosity p: 0.4 % as received, closing by up to half at high temperature (k = 0.05 h⁻¹ at 1000 °C).
Quench cracking: P = logistic((ln Ṫ − ln Ṫ_c)/0.3), Ṫ_c = 400 K/s·(400 MPa/σ_core)^1.5/(1 + c/0.05)
  (failure ``quench_cracked``); survivors carry microcracks, 50·P per mm².
Sample-to-sample variation: furnace ±3 K, time ±1 %, cooling ±5 %, composition ±0.0005, d_rx ±5 %.

Objective ``strength_ductility`` = σ_y·elongation/1000 (GPa·%, the product of strength and elongation used
for high-strength steels), as an expected value: times the chance that the sample survives (melting with
the ±3 K furnace scatter, quench cracking). Its optimum (``optimum()``, checked by the tests) is interior,
at the solvus of its own composition: argon, 943 °C, 2.8 h, 27 K/s, alloy_fraction 0.052 → 18.5 GPa·%
(σ_y ≈ 683 MPa, elongation ≈ 27.6 %, d ≈ 9.5 µm, fine precipitates ≈ 15 nm).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erfc

from instruments.sim.systems.base import Failure, InputSpec, MaterialSystem, Optimum, Outcome
from instruments.sim.systems.optimize import maximize

NAME = "two_phase_alloy"
R = 8.314
C_BETA = 0.5
SPECIMEN_MM = 2.0
TEMP_SCATTER_K = 3.0
SIGMA_N = 900.0  # MPa: ductility e-folds over this much strengthening

INPUTS = (
    InputSpec("anneal_temperature", "degC", 600.0, 1100.0, doc="annealing (soak) temperature"),
    InputSpec("anneal_time", "h", 0.1, 20.0, log=True, doc="time at the annealing temperature"),
    InputSpec("cooling_rate", "K/s", 0.1, 500.0, log=True, doc="cooling rate after annealing"),
    InputSpec("alloy_fraction", "1", 0.0, 0.12, doc="atom fraction of the alloying element B"),
    InputSpec("atmosphere", choices=("argon", "vacuum", "air"), doc="furnace atmosphere"),
)
OUTPUTS = {"yield_strength": "MPa", "hardness": "HV", "elongation": "%", "strength_ductility": "GPa*%"}
RELATIVE_NOISE = {"yield_strength": 0.03, "hardness": 0.02, "elongation": 0.05, "strength_ductility": 0.06}

Array = NDArray[np.float64]


def _arr(x: ArrayLike) -> Array:
    return np.asarray(x, dtype=np.float64)


def _arrhenius(at_ref: float, q_j: float, t_ref_c: float, temp_k: Array) -> Array:
    """Rate ``at_ref`` at ``t_ref_c`` °C, scaled to ``temp_k`` with activation energy ``q_j`` J/mol."""
    return at_ref * np.exp(-q_j / R * (1.0 / temp_k - 1.0 / (t_ref_c + 273.15)))


def solvus(temp_k: ArrayLike) -> Array:
    """Solubility of B in the matrix (fraction) at ``temp_k``."""
    return 3.0 * np.exp(-41_000.0 / (R * _arr(temp_k)))


def solidus_c(c: ArrayLike) -> Array:
    """Solidus temperature (°C) of an alloy with fraction ``c`` of B."""
    return 1230.0 - 1800.0 * _arr(c)


def equilibrium_fraction(c: ArrayLike, temp_k: ArrayLike) -> Array:
    """Lever-rule fraction of β at ``temp_k``."""
    cs = solvus(temp_k)
    return np.clip((_arr(c) - cs) / (C_BETA - cs), 0.0, None)


def orowan(f: ArrayLike, r_um: ArrayLike) -> Array:
    """Orowan bypass stress (MPa) of particles of volume fraction ``f`` and radius ``r_um``."""
    f = np.clip(_arr(f), 1e-9, 0.5)
    r_nm = np.maximum(_arr(r_um) * 1e3, 0.3)
    rbar = np.sqrt(2.0 / 3.0) * r_nm
    spacing = 2.0 * rbar * (np.sqrt(np.pi / (4.0 * f)) - 1.0)
    pre = 0.4 * 3.06 * 80e3 * 0.248 / (np.pi * np.sqrt(1 - 0.29))  # MPa·nm
    return pre * np.log(2.0 * rbar / 0.248) / np.maximum(spacing, 1e-3)


def precipitation(f: ArrayLike, r_um: ArrayLike) -> Array:
    """Particle strengthening (MPa): shearing below ~3 nm, Orowan bypass above, smoothly combined."""
    f, r_um = _arr(f), _arr(r_um)
    r_x = 3e-3
    shear = orowan(f, r_x) * np.sqrt(np.maximum(r_um, 1e-6) / r_x)
    bypass = orowan(f, r_um)
    out = (shear**-2 + bypass**-2) ** -0.5
    return np.where(f > 1e-9, out, 0.0)


def model(
    anneal_temperature: ArrayLike,
    anneal_time: ArrayLike,
    cooling_rate: ArrayLike,
    alloy_fraction: ArrayLike,
    atmosphere: str,
    *,
    d_rx_um: ArrayLike = 6.0,
    porosity0: ArrayLike = 0.004,
) -> dict[str, Array]:
    """Noise-free microstructure and properties; numeric inputs broadcast (vectorized over candidates)."""
    tc, t_h, rate, c = _arr(anneal_temperature), _arr(anneal_time), _arr(cooling_rate), _arr(alloy_fraction)
    tk = tc + 273.15
    # recrystallization of the cold-rolled strip (solute drag slows it)
    k_rx = _arrhenius(2.0, 280e3, 700.0, tk) / (1.0 + c / 0.02)
    x_rx = 1.0 - np.exp(-((k_rx * t_h) ** 1.5))
    # coarse particles dissolve toward the lever-rule fraction and ripen
    f0 = c / C_BETA  # hot-rolled and slowly cooled: all B sits in coarse β
    f_eq = equilibrium_fraction(c, tk)
    f_a = f_eq + (f0 - f_eq) * np.exp(-_arrhenius(1.0, 230e3, 900.0, tk) * t_h)
    r3 = 0.5**3 + _arrhenius(0.5, 250e3, 1000.0, tk) * t_h
    r_coarse = np.cbrt(r3) * np.cbrt(np.where(f0 > 0, f_a / np.maximum(f0, 1e-12), 1.0))
    c_ss_anneal = np.maximum(c - C_BETA * f_a, 0.0)
    # grain growth after recrystallization, with solute drag and Zener pinning
    k_g = _arrhenius(80.0, 230e3, 950.0, tk) / (1.0 + c_ss_anneal / 0.02)
    d_rx = _arr(d_rx_um)
    d_free = np.sqrt(d_rx**2 + k_g * t_h * x_rx)
    d_zener = 4.0 * np.maximum(r_coarse, 1e-3) / (3.0 * np.maximum(f_eq, 1e-9))
    grow = d_free - d_rx
    d = d_rx + grow * d_zener / (d_zener + grow)
    # precipitation on cooling: slow cooling sends it to grain boundaries and coarsens it
    t_w = 250.0 / rate
    f_cool = np.maximum(c / C_BETA - f_a, 0.0) * (1.0 - np.exp(-((0.05 * t_w) ** 2)))
    phi_gb = 1.0 / (1.0 + rate / 1.0)
    f_gb = f_cool * phi_gb
    f_c = f_cool - f_gb
    r_fine = 5e-3 * np.sqrt(t_w)
    c_ss = np.maximum(c - C_BETA * (f_a + f_cool), 0.0)
    # porosity of the as-received strip closes slowly at high temperature
    p = _arr(porosity0) * (1.0 - 0.5 * (1.0 - np.exp(-_arrhenius(0.05, 200e3, 1000.0, tk) * t_h)))
    # strength of the core
    s_hp = 0.55e3 / np.sqrt(d)  # k_HP in MPa·µm^½
    s_ss = 1100.0 * c_ss ** (2.0 / 3.0)
    s_pf = precipitation(f_c, r_fine)
    s_pc = precipitation(f_a, r_coarse)
    s_cw = 350.0 * (1.0 - x_rx)
    core = 60.0 + s_hp + s_ss + np.sqrt(s_pf**2 + s_pc**2 + s_cw**2)
    # surface layer from the atmosphere
    layer = 60.0 + s_hp
    if atmosphere == "vacuum":
        delta = np.sqrt(_arrhenius(0.5, 300e3, 1100.0, tk) * t_h * 3600.0)
    else:
        delta = np.sqrt(_arrhenius(0.7, 150e3, 1000.0, tk) * t_h * 3600.0) * (1.0 if atmosphere == "air" else 0.1)
    share = np.clip(2.0 * delta / (SPECIMEN_MM * 1e3), 0.0, 1.0)
    sigma_y = core * (1.0 - share) + layer * share
    # ductility and hardness
    sigma_star = sigma_y - 0.5 * s_hp
    n_core = 0.42 * np.exp(-sigma_star / SIGMA_N)
    damage = np.exp(-(f_a + 3.0 * f_gb) / 0.06) * (1.0 - 0.7 * (1.0 - x_rx)) * np.exp(-p / 0.05)
    elong = 60.0 * np.exp(-sigma_star / SIGMA_N) * damage
    if atmosphere == "air":
        elong = elong * (1.0 - 0.5 * share)  # the brittle oxide scale cracks early
    w = 1.0 - np.exp(-delta / 150.0)
    n_layer = 0.42 * np.exp(-(layer - 0.5 * s_hp) / SIGMA_N)
    hv = 0.306 * (core * (1.0 + n_core / 2.0) * (1.0 - w) + layer * (1.0 + n_layer / 2.0) * w)
    # quench cracking
    rate_c = 400.0 * (400.0 / core) ** 1.5 / (1.0 + c / 0.05)
    p_qc = 1.0 / (1.0 + np.exp(-(np.log(rate) - np.log(rate_c)) / 0.3))
    return {
        "recrystallized_fraction": x_rx,
        "grain_size_um": d,
        "second_phase_fraction": f_a,
        "particle_radius_um": r_coarse,
        "fine_precipitate_fraction": f_c,
        "boundary_precipitate_fraction": f_gb,
        "fine_precipitate_radius_nm": r_fine * 1e3,
        "solute_in_solution": c_ss,
        "surface_layer_um": delta,
        "porosity": p,
        "sigma_hall_petch": s_hp,
        "sigma_solid_solution": s_ss,
        "sigma_precipitation": np.sqrt(s_pf**2 + s_pc**2),
        "sigma_work_hardening": s_cw,
        "quench_crack_probability": p_qc,
        "yield_strength": sigma_y,
        "hardness": hv,
        "elongation": elong,
        "strength_ductility": sigma_y * elong / 1000.0,
    }


def survival_probability(
    anneal_temperature: ArrayLike, alloy_fraction: ArrayLike, quench_crack_probability: ArrayLike
) -> Array:
    """Chance that a sample neither melts (furnace scatter σ_T = 3 K around the set point) nor quench-cracks."""
    margin = (solidus_c(alloy_fraction) - _arr(anneal_temperature)) / TEMP_SCATTER_K
    p_melt = 0.5 * erfc(margin / np.sqrt(2.0))
    return (1.0 - p_melt) * (1.0 - _arr(quench_crack_probability))


def _expected(name: str) -> Any:
    def objective(**conditions: Any) -> Array:
        m = model(**conditions)
        ok = survival_probability(
            conditions["anneal_temperature"], conditions["alloy_fraction"], m["quench_crack_probability"]
        )
        return m[name] * ok

    objective.__doc__ = (
        f"Noise-free expected {name} ({OUTPUTS[name]}) of a requested sample: the model value times the "
        "chance that the sample survives (a failed sample scores zero)."
    )
    return objective


strength_ductility = _expected("strength_ductility")


OBJECTIVES = {
    "strength_ductility": strength_ductility,
    "yield_strength": _expected("yield_strength"),
    "elongation": _expected("elongation"),
    "hardness": _expected("hardness"),
}


def outcome(conditions: Mapping[str, Any], rng: np.random.Generator) -> Outcome:
    """One sample: the set point plus furnace scatter, its true microstructure and properties, or its failure."""
    tc = float(conditions["anneal_temperature"]) + rng.normal(0.0, TEMP_SCATTER_K)  # furnace uniformity ±3 K
    t_h = float(conditions["anneal_time"]) * (1.0 + rng.normal(0.0, 0.01))
    rate = float(conditions["cooling_rate"]) * float(np.exp(rng.normal(0.0, 0.05)))
    c = max(float(conditions["alloy_fraction"]) + rng.normal(0.0, 0.0005), 0.0)
    atmosphere = str(conditions["atmosphere"])
    m = model(
        tc,
        t_h,
        rate,
        c,
        atmosphere,
        d_rx_um=6.0 * np.exp(rng.normal(0, 0.05)),
        porosity0=0.004 * np.exp(rng.normal(0, 0.2)),
    )
    p_qc = float(m["quench_crack_probability"])
    truth: dict[str, Any] = {k: float(v) for k, v in m.items()}
    truth |= {
        "system": NAME,
        "actual_anneal_temperature": tc,
        "actual_anneal_time": t_h,
        "actual_cooling_rate": rate,
        "actual_alloy_fraction": c,
        "grain_size_sigma_ln": 0.35 + 0.1 * (1.0 - truth["recrystallized_fraction"]),
        "pore_radius_um": 1.2 * float(np.exp(rng.normal(0, 0.1))),
        "crack_density_per_mm2": 50.0 * p_qc,
        "crack_length_um": 3.0 * truth["grain_size_um"],
        "deformed_fraction": 1.0 - truth["recrystallized_fraction"],
    }
    if tc > float(solidus_c(c)):
        return Outcome(
            truth,
            Failure(
                "melted",
                f"annealed at {tc:.0f} °C, above the solidus {float(solidus_c(c)):.0f} °C of alloy_fraction={c:.3f}",
            ),
        )
    if rng.random() < p_qc:
        return Outcome(
            truth, Failure("quench_cracked", f"cracked on quenching at {rate:.3g} K/s (crack probability {p_qc:.2f})")
        )
    return Outcome(truth)


def process_time_s(conditions: Mapping[str, Any]) -> float:
    """Ramp at 10 K/min from 25 °C, soak, then cool at the set rate (not faster than the furnace allows)."""
    tc = float(conditions["anneal_temperature"])
    ramp = (tc - 25.0) / 10.0 * 60.0
    cool = (tc - 25.0) / float(conditions["cooling_rate"])
    return ramp + float(conditions["anneal_time"]) * 3600.0 + cool


def optimum(objective: str = "strength_ductility", *, seed: int = 0, maxiter: int = 300) -> Optimum:
    """Numerical global maximum of a noise-free objective (differential evolution per atmosphere)."""
    return maximize(INPUTS, OBJECTIVES[objective], objective, seed=seed, maxiter=maxiter)


SYSTEM = MaterialSystem(
    name=NAME,
    inputs=INPUTS,
    outputs=OUTPUTS,
    outcome=outcome,
    objectives=OBJECTIVES,
    process_time_s=process_time_s,
    optimum=optimum,
    default_pixel_size_um=0.2,  # resolves the coarse particles (r ≈ 0.3–1 µm) with several pixels each
    relative_noise=RELATIVE_NOISE,
)
