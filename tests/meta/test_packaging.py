"""What `pip install .` (not editable) installs: every package folder of the tree is listed in pyproject.toml.

A non-editable install takes only the packages that ``[tool.setuptools] packages`` names; one left out imports in an
editable checkout and in CI, and fails for a newcomer (``mgf.plugins.controls`` did, at `mgf generate`)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_for_a_plain_install():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, folders = set(config["packages"]), config["package-dir"]
    found = set()
    for package, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" in parts or any(part.endswith(".egg-info") for part in parts):
                continue
            found.add(".".join((package, *parts)))
    assert found - listed == set(), f"pyproject.toml does not list {sorted(found - listed)}"
    assert "mgf.plugins.controls" in found
