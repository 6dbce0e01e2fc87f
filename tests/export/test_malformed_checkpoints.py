"""Malformed checkpoints (issue 12, items 4 and 6): every damaged entry is a one-line
CheckpointError before anything large is allocated, and non-finite weights never compact or export."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch

from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.errors import CheckpointError, EdgerlError
from edgerl.export import export_policy
from edgerl.export.policy import policy_from_checkpoint
from edgerl.nets import build_net
from tests.conftest import run_cli
from tests.export.conftest import make_sac_agent, sac_payload


def _actor_kwargs(**kw: Any) -> Callable[[dict], None]:
    def edit(p: dict) -> None:
        p["agent"]["nets"]["actor"]["spec"]["kwargs"].update(kw)
    return edit


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def edit(p: dict) -> None:
        *head, last = path.split("/")
        d = p
        for k in head:
            d = d[k]
        d[last] = value
    return edit


def _drop_kwarg(p: dict) -> None:
    del p["agent"]["nets"]["actor"]["spec"]["kwargs"]["act_dim"]


def _nan_weight(p: dict) -> None:
    p["agent"]["nets"]["actor"]["state"]["trunk.0.weight"][0, 0] = float("nan")


def _inf_normalizer(p: dict) -> None:
    p["agent"]["normalizer"]["var"][0] = float("inf")


DAMAGE: dict[str, tuple[Callable[[dict], None], str]] = {
    "widths as strings": (_actor_kwargs(hidden=["32", "32"]), r"expected Sequence\[int\]"),
    "negative width": (_actor_kwargs(hidden=[-32, 32]), "cannot be built|does not match"),
    "width 10**9": (_actor_kwargs(hidden=[10**9, 32]), "does not match its spec"),
    "width 4,000,000": (_actor_kwargs(hidden=[4_000_000, 32]), "does not match its spec"),
    "width 10**40": (_actor_kwargs(hidden=[10**40, 32]), "far above any layer width"),
    "10**5 layers": (_actor_kwargs(hidden=[32] * 10**5), "list of 100000 items"),
    "kwarg missing": (_drop_kwarg, r"lacks \['act_dim'\]"),
    "kwarg extra": (_actor_kwargs(dropout=0.1), r"unknown \['dropout'\]"),
    "spec not a dict": (_set("agent/nets/actor/spec", "sac_actor"), "spec must be"),
    "unknown net type": (_set("agent/nets/actor/spec/type", "resnet"), "unknown network type"),
    "state not tensors": (_set("agent/nets/actor/state", {"trunk.0.weight": [1.0]}), "state must map"),
    "env not a dict": (_set("env", "Hopper-v5"), "env"),
    "bounds as strings": (_set("env/action_space/low", ["-1", "-1", "-1"]), "action_space has low"),
    "bounds inverted": (_set("env/action_space/low", [3.0, 3.0, 3.0]), "low > high"),
    "bounds wrong length": (_set("env/action_space/high", [1.0, 1.0]), "action_space has high"),
    "obs shape negative": (_set("env/observation_space/shape", [-11]), "observation_space has shape"),
    "obs dtype object": (_set("env/observation_space/dtype", "object"), "dtype"),
    "space kind": (_set("env/action_space/kind", "multibinary"), "kind"),
    "NaN weight": (_nan_weight, "non-finite"),
    "inf normaliser": (_inf_normalizer, "non-finite"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_malformed_checkpoint_is_one_line_error(tmp_path, hopper_env, damage):
    edit, match = DAMAGE[damage]
    payload = copy.deepcopy(sac_payload(make_sac_agent(), hopper_env))
    edit(payload)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, payload)  # a valid file (digest and CRCs match) whose content is wrong
    with pytest.raises(EdgerlError, match=match) as err:
        policy_from_checkpoint(load_checkpoint(path))
    assert "\n" not in str(err.value) and len(str(err.value)) < 600


def test_spec_is_checked_against_stored_shapes_before_building(monkeypatch, hopper_env):
    """The 4,000,000-wide spec is refused from the meta-device build; the real constructor never runs."""
    from edgerl.nets import mlp

    entry = copy.deepcopy(sac_payload(make_sac_agent(), hopper_env)["agent"]["nets"]["actor"])
    entry["spec"]["kwargs"]["hidden"] = [4_000_000, 32]
    real_init = mlp.SquashedGaussianActor.__init__
    built_on: list[str] = []

    @functools.wraps(real_init)
    def spy(self, *a, **kw):
        built_on.append(str(torch.empty(0).device))
        real_init(self, *a, **kw)

    monkeypatch.setattr(mlp.SquashedGaussianActor, "__init__", spy)
    with pytest.raises(CheckpointError, match="the spec needs \\(4000000, 11\\), the file stores \\(32, 11\\)"):
        build_net(entry["spec"], entry["state"], name="actor")
    assert built_on == ["meta"]
    built_on.clear()
    entry["spec"]["kwargs"]["hidden"] = [32, 32]
    net = build_net(entry["spec"], entry["state"], name="actor")
    assert built_on == ["meta", "cpu"]
    torch.testing.assert_close(net.state_dict()["trunk.0.weight"], entry["state"]["trunk.0.weight"])


def test_nan_checkpoint_fails_compact_and_export_in_one_line(tmp_path, hopper_env):
    payload = sac_payload(make_sac_agent(), hopper_env)
    _nan_weight(payload)
    save_checkpoint(tmp_path / "ckpt.pt", payload)
    proc = run_cli("compact", "--recorded-steps", "0", str(tmp_path / "ckpt.pt"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert "non-finite" in proc.stderr
    with pytest.raises(CheckpointError, match="non-finite") as err:
        export_policy(tmp_path / "ckpt.pt", recorded_steps=0)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # nothing written


def test_compact_tolerance_check_fails_on_nan(monkeypatch, hopper_env):
    """Compact's own 1e-5 check: a NaN difference (which ``worst > tol`` let pass) is an error."""
    from edgerl.compact import api

    monkeypatch.setattr(api, "_max_diff", lambda *a: float("nan"))
    with pytest.raises(api.CompactCheckError, match="not finite"):
        api.compact_checkpoint(sac_payload(make_sac_agent(), hopper_env), recorded_steps=0, random_obs=8)
