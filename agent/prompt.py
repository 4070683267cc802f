"""The terminal approver behind ``matloop run --approve``: shows each proposal and asks approve, veto, edit
or stop; an edit asks each input again (Enter keeps the value) until the conditions lie in the space."""

from __future__ import annotations

from rich.console import Console
from rich.prompt import Prompt
from rich.table import Table

from agent.human import Decision, ProposalInfo, coerce_conditions, edit_problems
from agent.spec import CampaignSpec

CHOICES = {"a": "approve", "v": "veto", "e": "edit", "s": "stop"}


class PromptApprover:
    """Asks on ``console`` (stdin); end of input stops the campaign rather than approving anything."""

    def __init__(self, spec: CampaignSpec, who: str, console: Console) -> None:
        self.spec, self.who, self.console = spec, who, console

    def _ask(self, text: str, *, choices: list[str] | None = None, default: str | None = None) -> str:
        if default is None:
            return Prompt.ask(text, console=self.console, choices=choices)
        return Prompt.ask(text, console=self.console, choices=choices, default=default)

    def _show(self, p: ProposalInfo) -> None:
        units = self.spec.space.units()
        t = Table(title=f"experiment {p.index} proposed by {p.generator}", title_justify="left")
        t.add_column("input")
        t.add_column("value")
        for k, v in p.conditions.items():
            t.add_row(k, (f"{v:.6g}" if isinstance(v, float) else str(v)) + (f" {units[k]}" if units.get(k) else ""))
        self.console.print(t)
        if p.predictions:
            self.console.print(
                "predicted: " + ", ".join(f"{k} {m:.4g} ± {s:.2g}" for k, (m, s) in p.predictions.items()),
                highlight=False,
            )
        if p.acquisition_value is not None:
            self.console.print(f"acquisition value: {p.acquisition_value:.4g}", highlight=False)

    def review(self, proposal: ProposalInfo) -> Decision:
        self._show(proposal)
        try:
            choice = self._ask(r"\[a]pprove, \[v]eto, \[e]dit or \[s]top the campaign?", choices=list(CHOICES))
            kind = CHOICES[choice]
            if kind == "edit":
                return self._edit(proposal)
            note = self._ask("reason" if kind in ("veto", "stop") else "note (optional)", default="")
            return Decision(kind, self.who, note=note)  # type: ignore[arg-type]
        except EOFError:
            return Decision("stop", self.who, note="no answer (end of input)")

    def _edit(self, p: ProposalInfo) -> Decision:
        current: dict[str, object] = dict(p.conditions)
        while True:
            shown = {k: _short(v) for k, v in current.items()}
            raw = {k: self._ask(f"  {k}", default=shown[k]) for k in current}
            # Enter keeps the value itself, not its rounded display
            kept = {k: (current[k] if raw[k] == shown[k] else raw[k]) for k in current}
            edited = coerce_conditions(self.spec.space, kept)
            problems = edit_problems(self.spec.space, edited)
            if not problems:
                break
            for prob in problems:
                self.console.print(f"[red]not valid:[/] {prob}", highlight=False)
            self.console.print("enter the values again", highlight=False)
            current = kept
        note = self._ask("note (optional)", default="")
        return Decision("edit", self.who, note=note, conditions=edited)


def _short(v: object) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


__all__ = ["PromptApprover"]
