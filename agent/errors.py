"""One exception hierarchy for the agent, rooted in ``MatloopError``."""

from __future__ import annotations


class MatloopError(Exception):
    """Root of matloop's own errors."""


class ConfigError(MatloopError):
    """A user mistake in a campaign file or a command line; the message names the file, line and field."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        if len(problems) == 1:
            super().__init__(head + problems[0])
        else:
            super().__init__(head + f"{len(problems)} problems\n" + "\n".join(f"  - {p}" for p in problems))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[str], str]]:
        """Pickles by its problems, so that an error raised in a worker process reads the same in the parent."""
        return (ConfigError, (self.problems, self.source))


class StoreError(MatloopError):
    """The campaign store is missing, unreachable or in a state the agent cannot continue from."""


class IllegalTransition(MatloopError):
    """An experiment was asked to move between lifecycle states that are not connected."""
