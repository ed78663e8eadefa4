"""The MAE objective (image-gen-train-mae): micro-batches, exact resume, DDP (gloo, 2 CPU processes) == one
process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mae_ddp_worker import tiny_mae_config
from safetensors.torch import load_file

from image_gen.distributed import DistInfo
from image_gen.training.trainer import train

WORKER = Path(__file__).with_name("mae_ddp_worker.py")
REPO = Path(__file__).resolve().parents[2]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "mae" / "mae.safetensors"))


def assert_same(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for key in a:
        tol = dict(rtol=0, atol=0) if exact else dict(rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a[key], b[key], **tol, msg=key)


def test_grad_accum_equals_one_batch(tmp_path, fake_root):
    """The loss is normalised by the global hidden-pixel count: 4 micro-batches == 1 batch (float order)."""
    train(tiny_mae_config(str(tmp_path / "one"), str(fake_root)), DistInfo())
    train(tiny_mae_config(str(tmp_path / "four"), str(fake_root), grad_accum=4), DistInfo())
    one, four = weights(tmp_path / "one"), weights(tmp_path / "four")
    assert_same(one, four, exact=False)
    with pytest.raises(ValueError, match="batch_size=8"):
        train(tiny_mae_config(str(tmp_path / "bad"), str(fake_root), grad_accum=3), DistInfo())


def test_resume_is_exact(tmp_path, fake_root, monkeypatch):
    """Stop after step 2 of 4 (the step-2 train_state.safetensors), resume to 4: equal to 4 straight steps."""
    import shutil

    import image_gen.training.trainer as trainer_module

    original = trainer_module.save_train_state

    def save_and_keep(state, path):
        original(state, path)
        if state[1]["step"] == 2:
            shutil.copy(path, tmp_path / "step2.safetensors")

    monkeypatch.setattr(trainer_module, "save_train_state", save_and_keep)
    train(tiny_mae_config(str(tmp_path / "a"), str(fake_root), max_steps=4, checkpoint_every=2), DistInfo())
    (tmp_path / "b" / "mae").mkdir(parents=True)
    shutil.copy(tmp_path / "step2.safetensors", tmp_path / "b" / "mae" / "train_state.safetensors")
    train(tiny_mae_config(str(tmp_path / "b"), str(fake_root), max_steps=4), DistInfo())
    assert_same(weights(tmp_path / "a"), weights(tmp_path / "b"), exact=True)


@pytest.mark.slow
def test_two_ranks_match_one_process_and_resume_on_one(tmp_path, fake_root):
    """2 gloo ranks x 4 rows == 1 process x 8 rows; the 2-rank checkpoint resumes in 1 process exactly
    like the 1-process checkpoint does (same total steps, so the same cosine schedule)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}:{WORKER.parent}"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(WORKER), str(tmp_path / "ddp"), str(fake_root), "3"]
    subprocess.run(command, env=env, check=True, timeout=300, capture_output=True)
    train(tiny_mae_config(str(tmp_path / "single"), str(fake_root), max_steps=3), DistInfo())
    assert_same(weights(tmp_path / "ddp"), weights(tmp_path / "single"), exact=False)
    logged = [
        json.loads((tmp_path / r / "mae" / "metrics.jsonl").read_text().splitlines()[0])
        for r in ("ddp", "single")
    ]
    assert logged[0]["train/loss"] == pytest.approx(
        logged[1]["train/loss"], rel=1e-5
    )  # global loss, not a share
    for run in ("ddp", "single"):  # both step-3 checkpoints continued to step 5 in one process
        train(tiny_mae_config(str(tmp_path / run), str(fake_root), max_steps=5), DistInfo())
    assert_same(weights(tmp_path / "ddp"), weights(tmp_path / "single"), exact=False)


def test_train_mae_leaves_global_torch_state_alone_and_saves_no_pickle(tmp_path, fake_root):
    """Caller's RNG and thread count survive, weights depend on config.seed only, resume state is
    safetensors."""
    from safetensors import safe_open

    threads = torch.get_num_threads()
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    config = tiny_mae_config(str(tmp_path / "a"), str(fake_root), max_steps=1, num_threads=threads + 1)
    train(config, DistInfo())
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    torch.manual_seed(456)
    train(tiny_mae_config(str(tmp_path / "b"), str(fake_root), max_steps=1), DistInfo())
    assert_same(weights(tmp_path / "a"), weights(tmp_path / "b"), exact=True)
    train(tiny_mae_config(str(tmp_path / "c"), str(fake_root), max_steps=1, seed=1), DistInfo())
    assert any(not torch.equal(weights(tmp_path / "a")[k], v) for k, v in weights(tmp_path / "c").items())
    run = tmp_path / "a" / "mae"
    assert not list(run.glob("*.pt"))
    with safe_open(str(run / "train_state.safetensors"), framework="pt") as handle:
        assert {"generator", "optimizer.0.exp_avg"} <= set(handle.keys())
