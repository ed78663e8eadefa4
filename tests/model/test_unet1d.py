import pytest
import torch

from drifting_policy.model import ConditionalUnet1D
from drifting_policy.model.unet1d import SinusoidalPosEmb


def tiny_unet(**options) -> ConditionalUnet1D:
    torch.manual_seed(0)
    return ConditionalUnet1D(action_dim=2, global_cond_dim=6, **{"down_dims": (16, 32, 64), "n_groups": 4,
                                                                 "step_embed_dim": 16, **options})


def test_output_shape_and_grad():
    unet = tiny_unet()
    sample = torch.randn(3, 16, 2, requires_grad=True)
    out = unet(sample, torch.tensor([0, 5, 99]), torch.randn(3, 6))
    assert out.shape == (3, 16, 2)
    out.square().sum().backward()
    assert sample.grad.abs().sum() > 0


def test_conditioning_broadcast_to_g_rows_equals_repeated_conditioning():
    # encoding an observation once and broadcasting it to its G rows must equal feeding it G times
    unet = tiny_unet()
    sample, cond = torch.randn(3 * 4, 16, 2), torch.randn(3, 6)
    broadcast = unet(sample, 7, cond)
    repeated = unet(sample, torch.full((12,), 7), cond.repeat_interleave(4, dim=0))
    assert torch.allclose(broadcast, repeated, atol=1e-5)
    per_obs_steps = unet(sample, torch.tensor([7, 7, 7]), cond)
    assert torch.allclose(broadcast, per_obs_steps, atol=1e-5)


def test_rows_are_independent():
    unet = tiny_unet().eval()
    sample, cond = torch.randn(4, 16, 2), torch.randn(4, 6)
    full = unet(sample, 3, cond)
    assert torch.allclose(unet(sample[2:3], 3, cond[2:3]), full[2:3], atol=1e-5)


def test_step_and_conditioning_change_the_output():
    unet = tiny_unet()
    sample, cond = torch.randn(2, 16, 2), torch.randn(2, 6)
    assert not torch.allclose(unet(sample, 0, cond), unet(sample, 50, cond))
    assert not torch.allclose(unet(sample, 0, cond), unet(sample, 0, cond + 1))


def test_zero_init_output_and_no_step_input():
    unet = tiny_unet(zero_init_output=True)
    assert torch.equal(unet(torch.randn(2, 16, 2), 0, torch.randn(2, 6)), torch.zeros(2, 16, 2))
    one_step = tiny_unet(step_embed_dim=0)
    assert one_step.step_encoder is None
    assert one_step(torch.randn(2, 16, 2), None, torch.randn(2, 6)).shape == (2, 16, 2)
    with pytest.raises(ValueError, match="without a step embedding"):
        one_step(torch.randn(2, 16, 2), 0, torch.randn(2, 6))


def test_bias_only_film_and_single_level():
    unet = tiny_unet(film_scale=False, down_dims=(8,))
    assert unet(torch.randn(2, 5, 2), 1, torch.randn(2, 6)).shape == (2, 5, 2)


def test_errors_for_bad_horizon_and_row_counts():
    unet = tiny_unet()
    with pytest.raises(ValueError, match="T=10 is not divisible by 2\\*\\*\\(len\\(down_dims\\)-1\\) = 4"):
        unet(torch.randn(2, 10, 2), 0, torch.randn(2, 6))
    with pytest.raises(ValueError, match="sample has 5 rows but global_cond has 2"):
        unet(torch.randn(5, 16, 2), 0, torch.randn(2, 6))


def test_diffusion_policy_parameter_count():
    # Diffusion Policy's Push-T low-dim UNet (down_dims 256/512/1024, kernel 5, step 256, FiLM scale,
    # obs 20 x 2): the same layers as DP's conditional_unet1d.py, counted on the meta device (no memory)
    with torch.device("meta"):
        unet = ConditionalUnet1D(2, 40, (256, 512, 1024), 5, 8, 256, True)
    assert sum(p.numel() for p in unet.parameters()) == 65_783_298


def test_sinusoidal_embedding_values():
    emb = SinusoidalPosEmb(8)(torch.tensor([0.0, 1.0]))
    assert torch.equal(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert emb[1, 0] == pytest.approx(torch.sin(torch.tensor(1.0)).item())
