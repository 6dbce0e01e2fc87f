"""Property-based fuzzing of the checkpoint loader and the recipe loader (issue 12): every
generated input ends in a one-line edgerl error or a valid result, never a traceback of another
kind, a silent change, or a non-finite action. ``tools/fuzz.py``-sized runs: raise
``EDGERL_FUZZ_EXAMPLES``."""

from __future__ import annotations

import copy
import functools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the dev extra: pip install -e '.[dev]'")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgerl.checkpoint import content_digest, load_checkpoint, save_checkpoint  # noqa: E402
from edgerl.config import from_sources, load_recipe  # noqa: E402
from edgerl.errors import ConfigError, EdgerlError  # noqa: E402

EXAMPLES = int(os.environ.get("EDGERL_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if EXAMPLES > 60 else []),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ENV = {"id": "Hopper-v5",
       "observation_space": {"kind": "box", "shape": [11], "dtype": "float64", "low": None, "high": None},
       "action_space": {"kind": "box", "shape": [3], "dtype": "float32", "low": [-1.0] * 3, "high": [1.0] * 3}}


@functools.cache
def _payload() -> dict[str, Any]:
    from edgerl.algos.sac import SACAgent, SACConfig

    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=[8], obs_norm=True), 11, 3)
    return {"kind": "train", "algo": "sac", "env": ENV, "config": {"algo": {"obs_norm": True}},
            "agent": agent.state(), "counters": {"global_step": 5}}


@functools.cache
def _raw(tmp: str) -> tuple[bytes, str]:
    """The reference file's bytes and its content digest."""
    save_checkpoint(Path(tmp) / "ref.pt", _payload())
    return (Path(tmp) / "ref.pt").read_bytes(), content_digest(load_checkpoint(Path(tmp) / "ref.pt"))


def _one_line(e: BaseException) -> None:
    assert "\n" not in str(e) and len(str(e)) < 1000, str(e)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**9)))
def test_damaged_bytes_are_an_error_or_change_nothing(tmp_path_factory, flips, cut):
    tmp = tmp_path_factory.getbasetemp()
    raw, want = _raw(str(tmp))
    data = bytearray(raw)
    for off, x in flips:
        data[off % len(data)] ^= x
    if cut is not None:
        data = data[: cut % len(data)]
    path = tmp / "fuzzed.pt"
    path.write_bytes(bytes(data))
    try:
        got = load_checkpoint(path)
    except EdgerlError as e:
        _one_line(e)
        return
    assert content_digest(got) == want


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k != "optim":  # the optimizer state is large and unused by the policy
                out += _paths(v, (*prefix, k))
    elif isinstance(obj, list) and len(obj) <= 8:
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 3, 11, 4_000_000]),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
              st.builds(lambda n, v: torch.full((n,), v), st.integers(0, 4), st.floats(-1e3, 1e3))),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


@FUZZ
@given(data=st.data())
def test_mutated_checkpoint_content_is_an_error_or_a_finite_policy(tmp_path_factory, data):
    from edgerl.export.policy import policy_from_checkpoint

    payload = copy.deepcopy(_payload())
    paths = _paths(payload)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths))
        parent = payload
        try:
            for k in where[:-1]:
                parent = parent[k]
            parent[where[-1]] = data.draw(VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent
    path = tmp_path_factory.getbasetemp() / "mutated.pt"
    try:
        save_checkpoint(path, payload)
    except TypeError:
        return  # not storable as tensors and plain data (e.g. a key of another type): never written
    try:
        policy = policy_from_checkpoint(load_checkpoint(path))
    except EdgerlError as e:
        _one_line(e)
        return
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(4, 11)), dtype=torch.float32)
    with torch.no_grad():
        act = policy(obs)
    assert act.shape == (4, 3) and bool(torch.isfinite(act).all())
    low, high = (torch.tensor(payload["env"]["action_space"][k]) for k in ("low", "high"))
    assert bool((act >= low - 1e-5).all() and (act <= high + 1e-5).all())


SETTING = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=8),
                    st.lists(st.one_of(st.integers(-5, 5000), st.text(max_size=3), st.floats()), max_size=4))
KEYS = st.sampled_from(["hidden", "batch_size", "gamma", "seed", "threads", "total_steps", "obs_norm", "tau",
                        "out", "env", "nonsense"])


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(["default", "Hopper-v5", "other"]),
                           st.one_of(st.dictionaries(KEYS, SETTING, max_size=4), SETTING), max_size=3))
def test_generated_recipes_are_config_errors_or_valid_configs(tmp_path_factory, doc):
    import yaml

    from edgerl.algos.sac import SACConfig
    from edgerl.config import RunConfig

    path = tmp_path_factory.getbasetemp() / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc))
    allowed = set(RunConfig.__dataclass_fields__) | set(SACConfig.__dataclass_fields__)
    try:
        values = load_recipe(path, "Hopper-v5", allowed)
        sac, run = from_sources(SACConfig, values), from_sources(RunConfig, values)
    except ConfigError as e:
        _one_line(e)
        return
    assert sac.batch_size >= 1 and all(h >= 1 for h in sac.hidden) and len(sac.hidden) >= 1
    assert 0 <= sac.gamma <= 1 and math.isfinite(sac.tau) and run.threads >= 1 and run.seed >= 0


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@ \n\t01.,?")), max_size=120))
def test_arbitrary_recipe_text_is_a_config_error_or_a_mapping(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "text.yaml"
    path.write_text(text)
    try:
        out = load_recipe(path, "Hopper-v5", {"a", "b"})
    except ConfigError as e:
        _one_line(e)
        return
    assert isinstance(out, dict) and set(out) <= {"a", "b"}
