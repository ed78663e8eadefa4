"""drifting_policy.common.ema: one EMA for the policy trainer and image_gen (Diffusion Policy's warm-up)."""

import pytest
import torch

from drifting_policy.common.ema import EMA, ratio_warmup_ema


def test_ratio_warmup_matches_image_gen_rule():
    """image_gen's min(decay, (1 + s) / (10 + s)) at 0-based step s is update s + 1 of ratio_warmup_ema."""
    ema = ratio_warmup_ema(torch.nn.Linear(2, 2), max_decay=0.99)
    for s in (0, 1, 8, 50, 10**6):
        assert ema.decay(s + 1) == pytest.approx(min(0.99, (1 + s) / (10 + s)), rel=1e-12)
    with pytest.raises(ValueError, match="ema decay=1.0"):
        ratio_warmup_ema(torch.nn.Linear(2, 2), max_decay=1.0)


def test_first_ratio_update_moves_ninety_percent_of_the_way():
    model = torch.nn.Linear(2, 2)
    ema = ratio_warmup_ema(model, max_decay=0.999)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1)  # decay 0.1: early on the average follows the live weights
    torch.testing.assert_close(ema.model.weight, model.weight - 0.1)


def test_policy_schedule_unchanged_and_state_round_trips():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, power=0.75, max_decay=0.9999)
    assert ema.decay(1) == 0.0 and ema.decay(2) == pytest.approx(1 - 2**-0.75)
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update(model, step=1)
    copy = EMA(torch.nn.Linear(2, 1))
    copy.load_state_dict(ema.state_dict())
    assert torch.equal(copy.model.weight, model.weight)
    with pytest.raises(ValueError, match="min_decay"):
        EMA(model, min_decay=0.5, max_decay=0.4)
