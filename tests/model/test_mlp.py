import pytest
import torch

from drifting_policy.model import MLPBackbone


def tiny_mlp(**options) -> MLPBackbone:
    torch.manual_seed(0)
    return MLPBackbone(action_dim=2, horizon=4, global_cond_dim=6, **{"width": 32, "depth": 2, **options})


@pytest.mark.parametrize("conditioning", ["film", "concat"])
@pytest.mark.parametrize("step_embed_dim", [0, 16])
def test_shapes_and_broadcast_equivalence(conditioning, step_embed_dim):
    mlp = tiny_mlp(conditioning=conditioning, step_embed_dim=step_embed_dim)
    step = 3 if step_embed_dim else None
    sample, cond = torch.randn(3 * 5, 4, 2), torch.randn(3, 6)
    out = mlp(sample, step, cond)
    assert out.shape == (15, 4, 2)
    repeated = mlp(sample, step, cond.repeat_interleave(5, dim=0))
    assert torch.allclose(out, repeated, atol=1e-6)


def test_film_starts_as_identity_then_conditions():
    mlp = tiny_mlp(conditioning="film")
    sample = torch.randn(2, 4, 2)
    # zero-initialised FiLM: at init the output ignores the observation ...
    assert torch.equal(mlp(sample, None, torch.randn(2, 6)), mlp(sample, None, torch.randn(2, 6)))
    with torch.no_grad():
        mlp.blocks[0].film.weight.normal_()
    # ... and depends on it once FiLM has weights (gradients reach it: see test_gradients_reach_film)
    assert not torch.allclose(mlp(sample, None, torch.zeros(2, 6)), mlp(sample, None, torch.ones(2, 6)))


def test_gradients_reach_film_and_noise_input_matters():
    mlp = tiny_mlp(conditioning="film")
    out = mlp(torch.randn(4, 4, 2), None, torch.randn(4, 6))
    out.square().sum().backward()
    assert mlp.blocks[0].film.weight.grad.abs().sum() > 0
    # a one-step generator needs distinct outputs for distinct noise at init
    cond = torch.randn(1, 6)
    assert not torch.allclose(mlp(torch.randn(1, 4, 2), None, cond), mlp(torch.randn(1, 4, 2), None, cond))


def test_concat_conditioning_uses_observation_at_init():
    mlp = tiny_mlp(conditioning="concat")
    sample = torch.randn(2, 4, 2)
    assert not torch.allclose(mlp(sample, None, torch.zeros(2, 6)), mlp(sample, None, torch.ones(2, 6)))


def test_step_embedding_changes_output_and_zero_init():
    mlp = tiny_mlp(conditioning="concat", step_embed_dim=16)
    sample, cond = torch.randn(2, 4, 2), torch.randn(2, 6)
    assert not torch.allclose(mlp(sample, 0, cond), mlp(sample, 60, cond))
    zero = tiny_mlp(zero_init_output=True)
    assert torch.equal(zero(sample, None, cond), torch.zeros(2, 4, 2))


def test_errors():
    with pytest.raises(ValueError, match="conditioning='attention'"):
        tiny_mlp(conditioning="attention")
    with pytest.raises(ValueError, match=r"sample is \[2, 5, 2\]; this MLP was built for \[N, 4, 2\]"):
        tiny_mlp()(torch.randn(2, 5, 2), None, torch.randn(2, 6))
    with pytest.raises(ValueError, match="has a step embedding; pass a timestep"):
        tiny_mlp(step_embed_dim=16)(torch.randn(2, 4, 2), None, torch.randn(2, 6))
