"""Packaging that pyproject.toml cannot express: the top-level ``profiles/`` and ``deploy/`` folders
(the single source, read in a checkout) ship inside the wheel as package data ``edgerl/_data/...``,
read through ``importlib.resources`` (``edgerl.runtime.resources``). Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
DATA = {"profiles": "edgerl._data.profiles", "deploy": "edgerl._data.deploy"}


def data_packages() -> dict[str, str]:
    """``{package: folder}`` for each data folder and its sub-folders (so none is a stray namespace)."""
    found = {}
    for folder, package in DATA.items():
        for d in sorted(p for p in [HERE / folder, *(HERE / folder).rglob("*")] if p.is_dir()):
            rel = d.relative_to(HERE)
            if "__pycache__" not in rel.parts:
                found[".".join([package, *rel.parts[1:]])] = rel.as_posix()
    return found


packages = data_packages()
setup(
    packages=find_packages(include=["edgerl", "edgerl.*"]) + list(packages),
    package_dir=packages,
    package_data={"edgerl": ["py.typed"], **{name: ["*"] for name in packages}},
    exclude_package_data={name: ["*.pyc"] for name in packages},
)
