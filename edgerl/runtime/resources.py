"""Where the data shipped with edgerl lives: ``profiles/`` (targets, recipes) and ``deploy/``.

In a source checkout (and an editable install) they are the top-level folders of the repository,
the single source. A wheel carries them as package data ``edgerl/_data/profiles`` and
``edgerl/_data/deploy`` (mapped by ``setup.py``), found through ``importlib.resources``.
"""

from __future__ import annotations

from pathlib import Path

KINDS = ("profiles", "deploy")


def shipped_dir(kind: str) -> Path:
    """The ``profiles`` or ``deploy`` folder of this edgerl installation (wheel data, else the checkout).

    The returned folder may not exist (the runtime copy inside a bundle has neither).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    try:
        from importlib.resources import files  # Python >= 3.9; a bundle's runtime may run on 3.8

        package = Path(str(files("edgerl")))
    except (ImportError, TypeError, ValueError):
        package = Path(__file__).resolve().parents[1]
    packaged = package / "_data" / kind
    return packaged if packaged.is_dir() else package.parent / kind
