"""Checkpoint file: round trip of every part, atomic replace, path resolution, rebuild of real policies."""

import numpy as np
import pytest
import torch
from training_fakes import (
    TINY_SHAPE_META,
    TinyConfig,
    TinyPolicy,
    build_tiny,
)

from drifting_policy.training import checkpoint as ckpt_mod
from drifting_policy.training.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_policy,
    read_metadata,
    resolve_path,
    save_checkpoint,
)


def trained_tiny(steps: int = 3):
    policy = TinyPolicy(TinyConfig())
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2, betas=(0.95, 0.999))
    batch = {"obs": {"pos": torch.randn(4, 2, 2)}, "action": torch.randn(4, 6, 2)}
    for _ in range(steps):
        loss, _ = policy.compute_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy, optimizer


def make_ckpt(policy, optimizer, step=3) -> Checkpoint:
    return Checkpoint(policy_name="tiny", policy_options={"noise_std": 0.1}, shape_meta=TINY_SHAPE_META,
                      policy_state=policy.state_dict(),
                      ema_state={k: v * 2 for k, v in policy.state_dict().items()},
                      optimizer_state=optimizer.state_dict(), rng_state={"torch": torch.get_rng_state()},
                      train_state={"step": step}, config={"train": {"lr": 0.01}, "name": "x"})


def test_round_trip_restores_every_part(tmp_path):
    policy, optimizer = trained_tiny()
    original = make_ckpt(policy, optimizer)
    path = save_checkpoint(tmp_path / "latest", original)
    assert path.name == "latest.safetensors"
    loaded = load_checkpoint(tmp_path / "latest")
    for key, value in policy.state_dict().items():
        assert torch.equal(loaded.policy_state[key], value) and torch.equal(loaded.ema_state[key], 2 * value)
    fresh_policy = TinyPolicy(TinyConfig())
    fresh = torch.optim.AdamW(fresh_policy.parameters(), lr=1.0)
    fresh.load_state_dict(loaded.optimizer_state)
    expected, got = optimizer.state_dict(), fresh.state_dict()
    assert got["param_groups"][0]["lr"] == 1e-2 and tuple(got["param_groups"][0]["betas"]) == (0.95, 0.999)
    for index, state in expected["state"].items():
        for key, value in state.items():
            assert torch.equal(got["state"][index][key], value), (index, key)
    assert torch.equal(loaded.rng_state["torch"], original.rng_state["torch"])
    assert loaded.train_state == {"step": 3} and loaded.config["train"]["lr"] == 0.01
    assert loaded.shape_meta["obs"]["pos"]["shape"] == [2]
    assert read_metadata(path)["policy_options"] == {"noise_std": 0.1}


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    policy, optimizer = trained_tiny()
    path = save_checkpoint(tmp_path / "latest", make_ckpt(policy, optimizer, step=3))
    before = path.read_bytes()

    def failing_save(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "save_file", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "latest", make_ckpt(policy, optimizer, step=4))
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["latest.safetensors"]
    assert load_checkpoint(path).train_state["step"] == 3


def test_resolve_path_and_errors(tmp_path):
    policy, optimizer = trained_tiny(1)
    path = save_checkpoint(tmp_path / "run" / "checkpoints" / "latest", make_ckpt(policy, optimizer))
    assert resolve_path(tmp_path / "run") == path
    assert resolve_path(tmp_path / "run" / "checkpoints" / "latest") == path
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resolve_path(tmp_path / "nothing")
    bad = make_ckpt(policy, optimizer)
    bad.format_version = 0
    save_checkpoint(tmp_path / "old", bad)
    with pytest.raises(ValueError, match="format_version=0"):
        load_checkpoint(tmp_path / "old")


def test_load_policy_uses_ema_weights_and_rebuilds(tmp_path):
    policy, optimizer = trained_tiny()
    save_checkpoint(tmp_path / "c", make_ckpt(policy, optimizer))
    ema = load_policy(tmp_path / "c", builder=build_tiny)
    raw = load_policy(tmp_path / "c", use_ema=False, builder=build_tiny)
    assert torch.equal(raw.linear.weight, policy.linear.weight)
    assert torch.equal(ema.linear.weight, 2 * policy.linear.weight) and not ema.training


@pytest.mark.parametrize("name", ["drifting", "diffusion", "regression"])
def test_real_policy_save_load_gives_identical_actions(tmp_path, name):
    from drifting_policy.policy import build_policy
    from drifting_policy.policy.normalizer import Normalizer

    shape_meta = {"obs": {"keypoint": {"shape": (9, 2), "type": "low_dim"},
                          "agent_pos": {"shape": (2,), "type": "low_dim"}}, "action": {"shape": (2,)}}
    options = {"backbone": "mlp", "mlp_width": 32, "mlp_depth": 2}
    if name == "diffusion":
        options["num_inference_steps"] = 5
    torch.manual_seed(0)
    policy = build_policy(name, options, shape_meta)
    rng = np.random.default_rng(0)
    data = {"keypoint": rng.uniform(0, 512, (50, 9, 2)), "agent_pos": rng.uniform(0, 512, (50, 2)),
            "action": rng.uniform(0, 512, (50, 2))}
    policy.set_normalizer(Normalizer().fit(data))
    ckpt = Checkpoint(policy_name=name, policy_options=options, shape_meta=shape_meta,
                      policy_state=policy.state_dict(), ema_state=policy.state_dict())
    save_checkpoint(tmp_path / name, ckpt)
    loaded = load_policy(tmp_path / name)
    obs = {"keypoint": torch.rand(3, 2, 9, 2) * 512, "agent_pos": torch.rand(3, 2, 2) * 512}
    policy.eval()
    with torch.no_grad():
        expected = policy.predict_action(obs, generator=torch.Generator().manual_seed(5))
        got = loaded.predict_action(obs, generator=torch.Generator().manual_seed(5))
    assert expected.shape == (3, 16, 2) and torch.equal(expected, got)


def test_damaged_or_foreign_files_name_the_file(tmp_path):
    from safetensors.torch import save_file

    from drifting_policy.training.checkpoint import load_checkpoint, read_metadata

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="garbage.safetensors: not a readable safetensors file"):
        load_checkpoint(garbage)
    foreign = tmp_path / "model.safetensors"  # e.g. an image generator's weights
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"kind": "generator"})
    with pytest.raises(ValueError, match=r"model.safetensors: not a policy checkpoint .*\['kind'\]"):
        read_metadata(foreign)
