"""The ``edgerl`` command line: every command (and its module-name alias) prints its help."""

from __future__ import annotations

import pytest

from edgerl.cli import ALIASES, COMMANDS, main


@pytest.mark.parametrize("name", [*COMMANDS, *ALIASES])
def test_every_command_prints_its_help(name, capsys):
    # argparse formats each flag's help with %-interpolation: a literal '%' in a documented config
    # field (e.g. "92% to 97%") used to crash `edgerl distill --help`.
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: edgerl" in capsys.readouterr().out
