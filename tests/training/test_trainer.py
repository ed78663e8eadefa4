"""The training loop: convergence, exact resume, NaN stop, EMA/lr schedules, budgets, evaluation hook."""

import json
import math

import numpy as np
import pytest
import torch
from training_fakes import (
    FAKE_ENV_ID,
    TINY_SHAPE_META,
    ReachWindows,
    TinyConfig,
    TinyPolicy,
)

from drifting_policy.common.schedules import lr_factor
from drifting_policy.evaluation.runner import EnvRunner, RunnerConfig
from drifting_policy.training.checkpoint import load_checkpoint
from drifting_policy.training.trainer import (
    EMA,
    IndexBatches,
    NonFiniteLossError,
    PolicySpec,
    TrainConfig,
    Trainer,
)

SPEC = PolicySpec("tiny", {}, TINY_SHAPE_META)


def tiny_config(**overrides) -> TrainConfig:
    options = dict(max_steps=40, batch_size=8, lr=1e-2, warmup_steps=5, log_every=5, val_every=None,
                   checkpoint_every=1000, eval_at_end=False, progress=False, seed=3)
    options.update(overrides)
    return TrainConfig(**options)


def make_trainer(tmp_path, policy_class=TinyPolicy, name="run", **overrides) -> Trainer:
    torch.manual_seed(0)
    policy = policy_class(TinyConfig())
    return Trainer(policy, ReachWindows(64), tiny_config(**overrides), tmp_path / name, SPEC,
                   val_dataset=ReachWindows(16, seed=1))


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def losses_of(run_dir):
    return [row for row in read_rows(run_dir / "metrics.jsonl") if "train/loss" in row]


def test_loss_decreases_and_metrics_are_logged(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=60, lr=3e-2, save_every=30)
    last = trainer.fit()
    rows = read_rows(tmp_path / "run" / "metrics.jsonl")
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["step"] for r in train_rows] == list(range(5, 61, 5))
    assert train_rows[-1]["train/loss"] < 0.3 * train_rows[0]["train/loss"]
    for key in ("train/grad_norm", "train/lr", "train/steps_per_s", "train/samples_seen", "train/minutes",
                "train/abs_error"):
        assert key in train_rows[-1], key
    assert train_rows[-1]["train/samples_seen"] == 60 * 8
    assert "val/loss" in last and rows[-1]["step"] == 60  # validation at the end of the run
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest")
    assert ckpt.train_state["step"] == 60 and ckpt.policy_name == "tiny"
    periodic = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_0000030")
    assert periodic.optimizer_state is None and periodic.train_state["step"] == 30  # weights + EMA only
    with pytest.raises(ValueError, match="weights only"):
        trainer.load_state(tmp_path / "run" / "checkpoints" / "step_0000060")


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path):
    k = 10  # a multiple of log_every, so the logged windows line up too
    reference = make_trainer(tmp_path, name="reference", max_steps=2 * k, checkpoint_every=k)
    reference.fit()

    class Crash(RuntimeError):
        pass

    class CrashingPolicy(TinyPolicy):
        calls = 0

        def compute_loss(self, batch, generator=None):
            CrashingPolicy.calls += 1
            if CrashingPolicy.calls > k + 3:  # dies 3 steps after the checkpoint at step k
                raise Crash()
            return super().compute_loss(batch, generator)

    with pytest.raises(Crash):
        make_trainer(tmp_path, CrashingPolicy, name="resumed", max_steps=2 * k,
                     checkpoint_every=k).fit()
    torch.manual_seed(123)  # a different process state: everything must come from the checkpoint
    resumed = Trainer(TinyPolicy(TinyConfig()), ReachWindows(64), tiny_config(max_steps=2 * k,
                      checkpoint_every=k), tmp_path / "resumed", SPEC, val_dataset=ReachWindows(16, seed=1))
    resumed.fit()
    assert resumed.step == 2 * k
    for (name, a), b in zip(reference.policy.state_dict().items(), resumed.policy.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(reference.ema.model.parameters(), resumed.ema.model.parameters(), strict=True):
        assert torch.equal(a, b)
    ref_rows = [r["train/loss"] for r in losses_of(tmp_path / "reference")]
    new_rows = [r["train/loss"] for r in losses_of(tmp_path / "resumed")]
    assert ref_rows == new_rows  # rows after the checkpoint were dropped and logged again, identically


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    class NanPolicy(TinyPolicy):
        calls = 0

        def compute_loss(self, batch, generator=None):
            NanPolicy.calls += 1
            loss, metrics = super().compute_loss(batch, generator)
            return (loss * math.nan if NanPolicy.calls == 13 else loss), metrics

    trainer = make_trainer(tmp_path, NanPolicy, checkpoint_every=5)
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* at step 13.*last good checkpoint"):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest")
    assert ckpt.train_state["step"] == 10
    assert all(torch.isfinite(v).all() for v in ckpt.policy_state.values())
    assert all(torch.isfinite(p).all() for p in trainer.policy.parameters())  # update not applied


def test_ema_schedule_and_update():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, power=0.75, max_decay=0.9999)
    assert ema.decay(1) == 0.0
    assert ema.decay(2) == pytest.approx(1 - 2 ** -0.75)
    assert ema.decay(10**9) == 0.9999
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=1)  # decay 0: a copy
    assert torch.equal(ema.model.weight, model.weight)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model, step=2)
    expected = 1.0 * ema.decay(2) + 3.0 * (1 - ema.decay(2))
    assert torch.allclose(ema.model.weight, torch.full_like(model.weight, expected))
    assert not ema.model.weight.requires_grad


def test_lr_warmup_then_cosine_is_continuous():
    warmup, total = 10, 110
    factors = [lr_factor(step, step / total, warmup, "cosine", warmup_end_progress=warmup / total)
               for step in range(total + 1)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[warmup - 1] == pytest.approx(1.0) and factors[warmup] == pytest.approx(1.0)
    assert factors[warmup + 50] == pytest.approx(0.5)  # half-way through the post-warm-up budget
    assert factors[total] == pytest.approx(0.0)
    assert max(abs(a - b) for a, b in zip(factors, factors[1:], strict=False)) <= 1 / warmup + 1e-9  # no jump
    assert lr_factor(10, 0.7, 10, "constant") == 1.0


def test_index_batches_resume_where_they_left_off():
    full = iter(IndexBatches(20, 6, seed=1))
    reference = [next(full) for _ in range(7)]  # 3 batches per epoch: crosses two epoch boundaries
    resumed = iter(IndexBatches(20, 6, seed=1, start_step=4))
    assert [next(resumed) for _ in range(3)] == reference[4:]
    assert len(set(sum(reference[:3], []))) == 18  # one epoch: no repeats
    assert reference[:3] != reference[3:6]  # a fresh permutation per epoch
    with pytest.raises(ValueError, match="batch_size"):
        IndexBatches(4, 8, seed=0)


def test_wall_clock_budget_stops_the_run(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=None, max_minutes=0.3 / 60)
    trainer.fit()
    assert trainer.train_seconds >= 0.3 and trainer.step > 1
    assert load_checkpoint(tmp_path / "run").train_state["step"] == trainer.step


def test_periodic_evaluation_writes_metrics_and_summaries(tmp_path):
    runner = EnvRunner(RunnerConfig(env_id=FAKE_ENV_ID, env_module=None, n_seeds=3, max_steps=8,
                                    obs_horizon=2, action_horizon=4, n_envs=3))
    trainer = make_trainer(tmp_path, max_steps=20, eval_every=10, eval_at_end=True)
    trainer.runners = {"eval/": runner}
    trainer.fit()
    rows = [r for r in read_rows(tmp_path / "run" / "metrics.jsonl") if "eval/mean_score" in r]
    assert [r["step"] for r in rows] == [10, 20]  # the end-of-run evaluation is not repeated
    assert all("train/minutes" in r for r in rows)
    summary = json.loads((tmp_path / "run" / "eval" / "step_0000020.json").read_text())
    assert len(summary["eval"]["scores"]) == 3 and summary["step"] == 20


def test_fresh_run_refuses_to_overwrite_without_resume(tmp_path):
    make_trainer(tmp_path, max_steps=5).fit()
    with pytest.raises(FileExistsError, match="resume"):
        make_trainer(tmp_path, max_steps=5, resume=False).fit()


def test_trains_a_real_policy(tmp_path):
    from drifting_policy.policy import build_policy
    from drifting_policy.policy.normalizer import Normalizer

    class Windows(torch.utils.data.Dataset):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.obs = rng.uniform(0, 512, (64, 2, 2)).astype(np.float32)
            self.action = (self.obs[:, -1:, :] + rng.normal(0, 5, (64, 16, 2))).astype(np.float32)

        def __len__(self):
            return 64

        def __getitem__(self, i):
            return {"obs": {"agent_pos": self.obs[i]}, "action": self.action[i]}

    shape_meta = {"obs": {"agent_pos": {"shape": (2,), "type": "low_dim"}}, "action": {"shape": (2,)}}
    options = {"backbone": "mlp", "mlp_width": 64, "mlp_depth": 2}
    policy = build_policy("regression", options, shape_meta)
    data = Windows()
    policy.set_normalizer(Normalizer().fit({"agent_pos": data.obs.reshape(-1, 2),
                                            "action": data.action.reshape(-1, 2)}))
    config = tiny_config(max_steps=30, batch_size=16, lr=3e-2, warmup_steps=1)
    trainer = Trainer(policy, data, config, tmp_path / "real",
                      PolicySpec("regression", options, shape_meta))
    trainer.fit()
    losses = [r["train/loss"] for r in read_rows(tmp_path / "real" / "metrics.jsonl") if "train/loss" in r]
    assert losses[-1] < 0.7 * losses[0]


def test_bf16_training_keeps_float32_weights_and_tracks_fp32(tmp_path):
    """bf16 autocast changes only the forward's rounding: weights stay float32, and 40 steps end within a
    few percent of the float32 run's loss (a dtype bug, e.g. a bf16 field or bf16 weights, diverges)."""
    fp32 = make_trainer(tmp_path, name="fp32", lr=3e-2).fit()
    trainer = make_trainer(tmp_path, name="bf16", lr=3e-2, precision="bf16")
    bf16 = trainer.fit()
    assert all(p.dtype == torch.float32 for p in trainer.policy.parameters())
    assert bf16["val/loss"] == pytest.approx(fp32["val/loss"], rel=0.1)
    assert bf16["val/loss"] != fp32["val/loss"]  # autocast really ran
    with pytest.raises(ValueError, match="precision"):
        tiny_config(precision="half")
