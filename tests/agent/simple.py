"""A small, fast campaign on the simulated lab for tests: the porous ceramic with two objectives from the
tester (no imaging), Sobol by default; and strategy stubs that record what they are told."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from surrogate.base import Conditions, Observation, Proposal, Strategy

ROOT = Path(__file__).resolve().parents[2]


def ceramic_campaign(
    tmp: Path,
    *,
    name: str = "cer",
    experiments: int = 8,
    lanes: int = 1,
    strategy: str = "name: sobol",
    space_edit: tuple[str, str] | None = None,
) -> Path:
    """Writes ``<tmp>/<name>.yaml``: ceramic_pareto without imaging (so without the porosity constraint)."""
    t = (ROOT / "campaigns" / "ceramic_pareto.yaml").read_text()
    t = t.replace("name: ceramic_pareto", f"name: {name}")
    t = re.sub(r"outcome_constraints:\n  - .*\n", "", t)
    t = re.sub(r"  imager:\n    type: sim-sem\n    options: .*\n", "", t)
    t = re.sub(r"imaging:\n  pipeline: classical\n", "", t)
    t = t.replace("  name: ax\n  options: {initial_points: 6}", "  " + strategy.replace("\n", "\n  "))
    t = t.replace("experiments: 16", f"experiments: {experiments}").replace("lanes: 3", f"lanes: {lanes}")
    if space_edit is not None:
        assert space_edit[0] in t, space_edit
        t = t.replace(*space_edit)
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{name}.yaml"
    path.write_text(t)
    return path


class Recording:
    """Wraps a strategy: records every ``tell`` batch and the pending points of every ``ask``; optionally
    adds model beliefs (predictions, acquisition value, ``model_state``) to its proposals."""

    def __init__(self, inner: Strategy, beliefs: bool = False) -> None:
        self.inner = inner
        self.beliefs = beliefs
        self.tells: list[list[Observation]] = []
        self.pendings: list[list[dict[str, Any]]] = []

    def ask(self, n: int, pending: Sequence[Conditions]) -> list[Proposal]:
        self.pendings.append([dict(p) for p in pending])
        out = self.inner.ask(n, pending)
        if not self.beliefs:
            return out
        return [
            Proposal(
                conditions=p.conditions,
                generator="stub-bo",
                predictions={"flexural_strength": (321.5, 4.0), "thermal_conductivity": (27.25, 1.5)},
                acquisition_value=0.0123,
                model_state={
                    "model": "stub GP",
                    "acquisition": "qLogNEHVI",
                    "lengthscales": {"pressure": 0.9, "sinter_temperature": 0.05, "hold_time": 0.3},
                    "relevance": {"sinter_temperature": 0.8, "pressure": 0.1},
                    "feasibility": 0.87,
                },
            )
            for p in out
        ]

    def tell(self, results: Sequence[Observation]) -> None:
        self.tells.append(list(results))
        self.inner.tell(results)

    @property
    def told(self) -> list[Observation]:
        return [o for batch in self.tells for o in batch]
