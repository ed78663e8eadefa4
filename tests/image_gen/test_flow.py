"""Rectified-flow baseline: Euler step counts, loss decrease, checkpoints through the evaluation loader."""

import pytest
import torch
from torch import nn

from image_gen.models.dit import DiTConfig
from image_gen.models.flow_dit import FlowDiT
from image_gen.objectives.flow import FlowTrainConfig, flow_loss
from image_gen.sampling import FlowSampler, euler_sample, load_any_generator
from image_gen.training.trainer import Trainer, train

TINY = dict(size="DiT-T/2", input_size=8, in_channels=4, num_in_context=2, num_style_tokens=0)


def tiny_flow(seed: int = 0) -> FlowDiT:
    torch.manual_seed(seed)
    return FlowDiT(DiTConfig(**TINY)).eval()


def count_calls(model: nn.Module) -> list[int]:
    """Batch size of every forward call of ``model``, recorded by a hook."""
    calls: list[int] = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    return calls


@pytest.mark.parametrize("nfe", [1, 10, 50])
@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_euler_sampler_makes_exactly_nfe_network_calls(nfe, guidance):
    model = tiny_flow()
    calls = count_calls(model)
    labels = torch.tensor([0, 3, 9])
    out = FlowSampler(model, nfe).generate(labels, guidance, torch.Generator().manual_seed(0))
    assert out.shape == (3, 4, 8, 8) and torch.isfinite(out).all()
    # CFG batches the conditional and null-class rows into the same call: still nfe calls, 2B rows each
    assert calls == [3 * (2 if guidance != 1.0 else 1)] * nfe


class ConstantVelocity(nn.Module):
    """v = u everywhere: the exact flow from x0 ends at x0 + u, whatever the step count."""

    null_class = 10

    def __init__(self, u: torch.Tensor):
        super().__init__()
        self.u = u

    def forward(self, x, t, labels):
        assert t.min() >= 0 and t.max() < 1  # Euler evaluates at the left end of each interval
        return self.u.expand_as(x)


@pytest.mark.parametrize("nfe", [1, 7])
def test_euler_integrates_a_constant_field_exactly(nfe):
    u = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    out = euler_sample(ConstantVelocity(u), noise, torch.tensor([1, 2]), nfe)
    torch.testing.assert_close(out, noise + u)
    with pytest.raises(ValueError, match="nfe=0"):
        euler_sample(ConstantVelocity(u), noise, torch.tensor([1, 2]), 0)


def test_null_class_and_time_change_the_velocity():
    model = tiny_flow()
    for block in model.blocks:  # leave adaLN-zero so conditioning reaches the output
        nn.init.normal_(block.adaLN_modulation[-1].weight, std=0.02)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.2, 0.2])
    base = model(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(base, model(x, t, torch.tensor([model.null_class] * 2)))
    assert not torch.allclose(base, model(x, torch.tensor([0.7, 0.7]), torch.tensor([1, 1])))


def test_flow_loss_decreases_on_a_tiny_problem():
    """Two classes, each one fixed latent: 40 AdamW steps cut the held-out-noise loss by more than 40%."""
    model = tiny_flow().train()
    targets = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1]).repeat(8)  # [16]
    data = targets[labels]

    def held_out() -> float:
        with torch.no_grad():
            return flow_loss(model, data, labels, torch.Generator().manual_seed(99)).item()

    before = held_out()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        loss = flow_loss(model, data, labels, generator, label_drop=0.1, null_class=model.null_class)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert held_out() < 0.6 * before


def tiny_train_config(tmp_path, fake_root, **overrides) -> FlowTrainConfig:
    base = dict(
        run_name="flow",
        out_dir=str(tmp_path),
        data_root=str(fake_root),
        device="cpu",
        model={"size": "DiT-T/4", "num_in_context": 2, "num_style_tokens": 0},
        batch_size=8,
        max_steps=4,
        warmup_steps=2,
        log_every=1,
        sample_every=100,
        checkpoint_every=100,
        grid_nfe=2,
    )
    return FlowTrainConfig(**{**base, **overrides})


def test_resume_is_exact_and_checkpoint_loads_for_evaluation(tmp_path, fake_root):
    straight = train(tiny_train_config(tmp_path / "a", fake_root, max_steps=4))
    train(tiny_train_config(tmp_path / "b", fake_root, max_steps=2))
    resumed = train(tiny_train_config(tmp_path / "b", fake_root, max_steps=4))
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)

    sampler, meta = load_any_generator(tmp_path / "a" / "flow" / "model.safetensors", "cpu", nfe=3)
    assert isinstance(sampler, FlowSampler) and sampler.nfe == 3 and meta["model_kind"] == "flow"
    ema = straight.ema.model
    for p, q in zip(ema.parameters(), sampler.model.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    assert sampler.generate(torch.arange(4), 1.5).shape == (4, 1, 32, 32)


def test_config_errors_name_the_field(tmp_path, fake_root):
    with pytest.raises(ValueError, match="vae_path"):
        FlowTrainConfig(space="latent")
    with pytest.raises(ValueError, match="label_drop"):
        FlowTrainConfig(label_drop=1.0)
    with pytest.raises(ValueError, match="model.in_channels=4"):
        Trainer(tiny_train_config(tmp_path, fake_root, model={"size": "DiT-T/4", "in_channels": 4}))


def test_flow_training_leaves_global_torch_state_alone_and_saves_no_pickle(tmp_path, fake_root):
    """No torch.manual_seed / set_num_threads in the library: the caller's RNG and thread count survive, the
    initial weights depend on config.seed only, and the resume state is a safetensors file."""
    from safetensors import safe_open

    from image_gen.training.state import load_train_state

    threads = torch.get_num_threads()
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    first = Trainer(tiny_train_config(tmp_path, fake_root, num_threads=threads + 1))
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    torch.manual_seed(456)
    second = Trainer(tiny_train_config(tmp_path, fake_root))
    pairs = zip(first.model.parameters(), second.model.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    other = Trainer(tiny_train_config(tmp_path, fake_root, seed=1))
    pairs = zip(first.model.parameters(), other.model.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)

    train(tiny_train_config(tmp_path, fake_root, max_steps=2))
    run = tmp_path / "flow"
    assert not list(run.glob("*.pt"))
    with safe_open(str(run / "train_state.safetensors"), framework="pt") as handle:
        keys = set(handle.keys())
    assert {"generator", "optimizer.0.exp_avg", "model.in_context", "ema.in_context"} <= keys
    _, meta = load_train_state(run / "train_state.safetensors")
    assert meta["step"] == 2 and meta["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.95]
