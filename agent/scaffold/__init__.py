"""``matloop driver new NAME``: writes an installable driver package from the templates beside this module."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from string import Template

from agent.errors import MatloopError

TEMPLATES = Path(__file__).parent / "templates"
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


class ScaffoldError(MatloopError):
    """The driver name or the target folder cannot be used; the message says what would be valid."""


def names(name: str) -> dict[str, str]:
    """The spellings of a driver name: YAML name, distribution, module and class (``acme-furnace`` →
    ``matloop-acme-furnace``, ``matloop_acme_furnace``, ``AcmeFurnace``)."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"driver name {name!r} is not valid: use lower-case letters and digits separated by single hyphens, "
            "starting with a letter (e.g. acme-furnace)"
        )
    module = "matloop_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-"))
    return {"name": name, "dist": f"matloop-{name}", "module": module, "cls": cls}


def scaffold_driver(name: str, out_dir: Path, *, force: bool = False) -> Path:
    """Writes ``out_dir/matloop-NAME/`` and returns it. Refuses a name that an installed instrument already has."""
    from instruments.registry import available

    n = names(name)
    if name in available():
        raise ScaffoldError(f"an instrument named {name!r} is already installed ({available()[name]}); pick another")
    root = out_dir / n["dist"]
    if root.exists() and not force:
        raise ScaffoldError(f"{root} already exists; pass --force to overwrite it")
    if root.exists():
        shutil.rmtree(root)
    files = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"{n['module']}/__init__.py": None,
        f"{n['module']}/driver.py": "driver.py.tmpl",
        f"{n['module']}/transport.py": "transport.py.tmpl",
        f"{n['module']}/twin.py": "twin.py.tmpl",
        "tests/test_driver.py": "test_driver.py.tmpl",
    }
    for target, template in files.items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (
            Template((TEMPLATES / template).read_text()).substitute(n)
            if template
            else f'"""matloop driver: {name}."""\n'
        )
        path.write_text(text)
    return root
