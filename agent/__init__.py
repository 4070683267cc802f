"""The agent: campaign spec, experiment lifecycle, the closed loop, the store and the CLI.

Names are imported on first use, so that ``import agent.spec`` stays light (no torch, no Ax).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Agent": "agent.loop",
    "RunResult": "agent.loop",
    "Update": "agent.loop",
    "Campaign": "agent.campaign",
    "validate": "agent.campaign",
    "CampaignSpec": "agent.spec",
    "load_spec": "agent.spec",
    "parse_spec": "agent.spec",
    "ConfigError": "agent.errors",
    "IllegalTransition": "agent.errors",
    "MatloopError": "agent.errors",
    "StoreError": "agent.errors",
    "ExperimentState": "agent.lifecycle",
    "Approver": "agent.human",
    "Decision": "agent.human",
    "ProposalInfo": "agent.human",
    "ScriptedApprover": "agent.human",
    "InvalidEdit": "agent.human",
    "Explanation": "agent.explain",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
