"""Recipe files and typed configs (issue 12, item 7): hostile recipes are refused fast, in one line."""

from __future__ import annotations

import pytest

from edgerl.algos.sac import SACConfig
from edgerl.config import RunConfig, from_sources, load_recipe
from edgerl.errors import ConfigError

ALLOWED = set(RunConfig.__dataclass_fields__) | set(SACConfig.__dataclass_fields__)

BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                 + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
                 + ["default:", "  hidden: *i"])


@pytest.mark.parametrize(("text", "match"), [
    (BOMB, "aliases"),
    ("default: &d {batch_size: 64}\nHopper-v5: *d\n", "aliases"),
    (b"default:\n  gamma: 0.9\xff\xfe\n", "not UTF-8"),
    ("default:\n  hidden: " + "[" * 5000 + "]" * 5000 + "\n", "not a valid recipe"),
    ("default:\n  seed: " + "9" * 6000 + "\n", "not a valid recipe"),
    ("default: [1, 2]\n", "must be a mapping"),
    ("- 1\n- 2\n", "must map env ids"),
    ("default:\n  batch_size: 64\n  batch_size: 32\n  {a: 1}: 2\n", "not a valid recipe|unknown keys"),
    ("default:\n  hidden: [a, b]\n", "SACConfig.hidden: cannot use"),
    ("default:\n  batch_size: 0\n", "--batch-size must be >= 1"),
    ("default:\n  gamma: .nan\n", "--gamma must be in"),
    ("---\na: 1\n---\nb: 2\n", "not a valid recipe"),
])
def test_hostile_recipes_are_one_line_errors(tmp_path, text, match):
    path = tmp_path / "r.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=match) as err:
        values = load_recipe(path, "Hopper-v5", ALLOWED)
        from_sources(SACConfig, values)
        from_sources(RunConfig, values)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 1500 and msg.count("lol") < 20


def test_oversized_recipe_is_refused_before_parsing(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("default:\n  gamma: 0.9\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="a recipe is a small YAML file"):
        load_recipe(path, "Hopper-v5", ALLOWED)


def test_recipe_values_are_range_checked_like_flags(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("default:\n  batch_size: 64\nHopper-v5:\n  hidden: [64, 64]\n  seed: 3\n")
    values = load_recipe(path, "Hopper-v5", ALLOWED)
    assert from_sources(SACConfig, values).hidden == [64, 64] and from_sources(RunConfig, values).seed == 3


@pytest.mark.parametrize(("flags", "match"), [(["--episodes", "0"], "--episodes must be >= 1"),
                                              (["--max-steps", "-1"], "--max-steps must be >= 1")])
def test_run_command_counts_are_validated(tmp_path, capsys, flags, match):
    from edgerl.cli import main

    assert main(["run", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err
