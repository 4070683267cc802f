"""The peers (surrogate.peers): on a 200-candidate composition pool and on Branin, every proposal is valid, new, never
pending nor measured, and the same seed and history give the same proposals; the plain-BoTorch peers really fit a
Matérn-5/2 ARD kernel and beat random search on a smooth pool; BayBE never re-proposes a measured (or failed)
candidate, to exhaustion; several objectives are refused by name."""

from __future__ import annotations

import importlib.util
import math
import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch

from surrogate.base import ConditionValue, Observation, Proposal, Strategy, StrategyError
from surrogate.encoding import canonical_key
from surrogate.objectives import Goal, Objective
from surrogate.pool import POOL_STRATEGIES, PoolStrategy, make_pool_strategy, validate_pool_options
from surrogate.registry import make_strategy, strategy_names, validate_strategy_options
from surrogate.space import Component, CompositionParameter, FloatParameter, SearchSpace

Cond = dict[str, ConditionValue]
HAS_BAYBE = importlib.util.find_spec("baybe") is not None
#: BayBE is an optional extra (matloop[peers], also in dev): its cases are skipped, with the reason, where it is missing
BAYBE = pytest.param("baybe", marks=pytest.mark.skipif(not HAS_BAYBE, reason="pip install 'matloop[peers]'"))
POOL_PEERS: list[Any] = ["botorch-logei", "botorch-ucb", "ax-pool", BAYBE]
CONTINUOUS_PEERS: list[Any] = ["botorch-logei", "botorch-ucb", BAYBE]
#: Ax's initialization is shortened so that its model proposes within the few asks of these tests
FAST: dict[str, dict[str, Any]] = {"ax-pool": {"initial_points": 2}}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------------- problems
def simplex() -> SearchSpace:
    return SearchSpace(
        parameters=(CompositionParameter(name="comp", components=tuple(Component(name=n) for n in "abc")),)
    )


def loss_goal() -> Goal:
    return Goal(objectives=(Objective(name="loss", direction="minimize", unit="1"),))


def simplex_pool(n: int = 200, seed: int = 0) -> list[Cond]:
    x = np.random.default_rng(seed).dirichlet(np.ones(3), size=n)
    return [{"a": float(r[0]), "b": float(r[1]), "c": float(1.0 - r[0] - r[1])} for r in x]


def loss(c: Mapping[str, ConditionValue]) -> float:
    """Smooth, minimum 0 at (a, b, c) = (0.6, 0.3, 0.1)."""
    return (float(c["a"]) - 0.6) ** 2 + (float(c["b"]) - 0.3) ** 2


def branin_space() -> SearchSpace:
    return SearchSpace(
        parameters=(
            FloatParameter(name="x1", low=-5.0, high=10.0, unit="1"),
            FloatParameter(name="x2", low=0.0, high=15.0, unit="1"),
        )
    )


def branin_goal() -> Goal:
    return Goal(objectives=(Objective(name="y", direction="minimize", unit="1"),))


def branin(c: Mapping[str, ConditionValue]) -> float:
    x1, x2 = float(c["x1"]), float(c["x2"])
    return (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


def observe(conds: list[Cond], f: Any, name: str) -> list[Observation]:
    return [Observation(dict(c), {name: (f(c), 0.0)}) for c in conds]


def pool_peer(name: str, seed: int = 0, pool: list[Cond] | None = None) -> Any:
    return make_pool_strategy(name, simplex(), loss_goal(), seed, pool or simplex_pool(), FAST.get(name, {}))


# ------------------------------------------------------------------------------------------------ registration
def test_peers_are_registered_by_name() -> None:
    assert {"botorch-logei", "botorch-ucb", "ax-pool", "baybe"} <= set(POOL_STRATEGIES)
    assert {"botorch-logei", "botorch-ucb", "baybe"} <= set(strategy_names())
    assert validate_strategy_options("botorch-ucb", {}).beta == 2.0  # type: ignore[attr-defined]
    assert validate_pool_options("botorch-ucb", {"beta": 4.0}).beta == 4.0  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="beta"):
        validate_pool_options("botorch-ucb", {"beta": -1.0})
    with pytest.raises(ValueError, match="extra"):
        validate_strategy_options("baybe", {"recommender": "x"})


# ------------------------------------------------------------------------------------------------------- pools
@pytest.mark.parametrize("name", POOL_PEERS)
def test_pool_peer_proposals_are_new_candidates_and_avoid_pending(name: str) -> None:
    pool = simplex_pool()
    s = pool_peer(name, seed=1, pool=pool)
    assert isinstance(s, PoolStrategy) and isinstance(s, Strategy)
    keys = {canonical_key(c) for c in pool}
    told: set[Any] = set()
    s.tell(observe(pool[:2], loss, "loss"))
    told |= {canonical_key(c) for c in pool[:2]}
    pending: list[Cond] = [pool[7]]
    for q in [1, 3, 2]:
        out = s.ask(q, pending)
        assert len(out) == q
        new = [canonical_key(p.conditions) for p in out]
        assert len(set(new)) == q and set(new) <= keys
        assert not set(new) & told and not set(new) & {canonical_key(c) for c in pending}
        # the oldest pending point finishes, the new ones stay pending for one ask
        done, pending = pending, [p.conditions for p in out]
        s.tell(observe(done, loss, "loss"))
        told |= {canonical_key(c) for c in done}
    assert s.remaining(pending) == len(pool) - len(told) - len(pending)


@pytest.mark.parametrize("name", POOL_PEERS)
def test_pool_peer_same_seed_and_history_give_the_same_proposals(name: str) -> None:
    pool = simplex_pool()
    history = observe(pool[:4], loss, "loss")

    def proposals(seed: int) -> list[Cond]:
        s = pool_peer(name, seed=seed, pool=pool)
        s.tell(history)
        return [p.conditions for p in s.ask(2, [pool[9]])]

    assert proposals(3) == proposals(3)


@pytest.mark.skipif(not HAS_BAYBE, reason="pip install 'matloop[peers]'")
def test_baybe_never_proposes_a_measured_or_failed_candidate_to_exhaustion() -> None:
    pool = simplex_pool(24, seed=4)
    s = pool_peer("baybe", seed=2, pool=pool)
    seen: list[Any] = []
    pending: list[Cond] = []
    for step in range(100):
        try:
            out = s.ask([1, 3, 2][step % 3], pending)
        except StrategyError as e:
            assert "pool exhausted" in str(e)
            break
        seen += [canonical_key(p.conditions) for p in out]
        done, pending = pending, [p.conditions for p in out]
        # every fifth candidate fails: it uses up its candidate and BayBE must not propose it again
        s.tell([Observation(c, {}, failed=True) if len(seen) % 5 == 0 else observe([c], loss, "loss")[0] for c in done])
    s.tell(observe(pending, loss, "loss"))
    assert len(seen) == len(set(seen)) == len(pool)
    assert s.remaining() == 0


def test_plain_botorch_fits_a_matern52_ard_kernel() -> None:
    from gpytorch.kernels import MaternKernel, ScaleKernel

    pool = simplex_pool()
    for name in ["botorch-logei", "botorch-ucb"]:
        s = pool_peer(name, pool=pool)
        s.tell(observe(pool[:6], loss, "loss"))
        (p,) = s.ask(1, [])
        c = make_strategy(name, branin_space(), branin_goal(), 0)
        c.tell(observe([{"x1": -3.0, "x2": 12.0}, {"x1": 3.0, "x2": 2.0}, {"x1": 9.0, "x2": 3.0}], branin, "y"))
        (q,) = c.ask(1, [])
        for model, d, proposal in [(s.last_model, 3, p), (c.last_model, 2, q)]:  # type: ignore[attr-defined]  # a, b, c; x1, x2
            kernel = model.covar_module
            assert isinstance(kernel, ScaleKernel) and isinstance(kernel.base_kernel, MaternKernel)
            assert kernel.base_kernel.nu == 2.5
            assert kernel.base_kernel.ard_num_dims == d and kernel.base_kernel.lengthscale.shape == (1, d)
            assert proposal.model_state["kernel"] == "ScaleKernel(MaternKernel(nu=2.5))"
        assert p.model_state["acquisition"] == (
            "LogExpectedImprovement" if name == "botorch-logei" else "UpperConfidenceBound"
        )
        # a batch (or pending points) uses the q-version
        assert s.ask(2, [])[0].model_state["acquisition"] in ("qLogExpectedImprovement", "qUpperConfidenceBound")


def test_plain_botorch_beats_random_on_a_smooth_pool() -> None:
    pool = simplex_pool(200, seed=7)
    best = min(loss(c) for c in pool)

    def regret(name: str, seed: int, budget: int = 14) -> float:
        s = make_pool_strategy(name, simplex(), loss_goal(), seed, pool, {})
        first = [pool[i] for i in np.random.default_rng([seed, 99]).choice(len(pool), 2, replace=False)]
        s.tell(observe(first, loss, "loss"))
        values = [loss(c) for c in first]
        for _ in range(budget - 2):
            (p,) = s.ask(1, [])
            values.append(loss(p.conditions))
            s.tell(observe([p.conditions], loss, "loss"))
        return min(values) - best

    seeds = range(4)
    rnd = statistics.mean(regret("random", k) for k in seeds)
    for name in ["botorch-logei", "botorch-ucb"]:
        gp = statistics.mean(regret(name, k) for k in seeds)
        assert gp < 0.5 * rnd, (name, gp, rnd)


# -------------------------------------------------------------------------------------------------- continuous
@pytest.mark.parametrize("name", CONTINUOUS_PEERS)
def test_continuous_peer_on_branin(name: str) -> None:
    space, goal = branin_space(), branin_goal()
    s = make_strategy(name, space, goal, 5)
    told: set[Any] = set()
    pending: list[Cond] = []
    proposals: list[Proposal] = []
    for q in [2, 1, 1, 3, 1, 2, 1, 1]:  # budget 12, pending carried between asks
        out = s.ask(q, pending)
        assert len(out) == q
        for p in out:
            assert not space.check(p.conditions), p.conditions
        keys = [canonical_key(p.conditions) for p in out]
        assert len(set(keys)) == q and not set(keys) & told
        assert not set(keys) & {canonical_key(c) for c in pending}
        proposals += out
        done, pending = pending, [p.conditions for p in out]
        s.tell(observe(done, branin, "y"))
        told |= {canonical_key(c) for c in done}
    assert len(proposals) == 12
    assert any(not p.generator.endswith(("sobol", "sobol-fill")) for p in proposals)  # the model proposed


@pytest.mark.parametrize("name", CONTINUOUS_PEERS)
def test_continuous_peer_same_seed_and_history_give_the_same_proposals(name: str) -> None:
    history = observe([{"x1": -3.0, "x2": 12.0}, {"x1": 3.0, "x2": 2.0}, {"x1": 9.0, "x2": 3.0}], branin, "y")

    def proposals() -> list[Cond]:
        s = make_strategy(name, branin_space(), branin_goal(), 4)
        s.tell(history)
        return [p.conditions for p in s.ask(2, [{"x1": 0.0, "x2": 5.0}])]

    assert proposals() == proposals()


@pytest.mark.parametrize("name", CONTINUOUS_PEERS)
def test_continuous_peer_keeps_the_composition_on_the_simplex(name: str) -> None:
    s = make_strategy(name, simplex(), loss_goal(), 1)
    s.tell(observe(simplex_pool(4, seed=3), loss, "loss"))
    for p in s.ask(3, []):
        assert not simplex().check(p.conditions)
        assert abs(sum(float(v) for v in p.conditions.values()) - 1.0) < 1e-9


# ------------------------------------------------------------------------------------------------------ limits
TWO = Goal(
    objectives=(
        Objective(name="loss", direction="minimize", unit="1"),
        Objective(name="cost", direction="minimize", unit="1"),
    )
)


@pytest.mark.parametrize("name", POOL_PEERS)
def test_pool_peer_refuses_several_objectives(name: str) -> None:
    if name == "ax-pool":
        pytest.skip("Ax optimizes several objectives itself (qLogNEHVI): the ax-pool peer takes them")
    with pytest.raises(StrategyError, match=r"one objective.*2 \(loss, cost\).*multi-objective"):
        make_pool_strategy(name, simplex(), TWO, 0, simplex_pool(20))


@pytest.mark.parametrize("name", CONTINUOUS_PEERS)
def test_continuous_peer_refuses_several_objectives(name: str) -> None:
    with pytest.raises(StrategyError, match=r"one objective.*2 \(loss, cost\).*multi-objective"):
        make_strategy(name, simplex(), TWO, 0)
