"""image_gen.distributed helpers and DDP training (gloo, 2 CPU processes under torchrun)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_worker import tiny_config

from image_gen.distributed import DistInfo, init_distributed, mean_metrics, rank_seed, split_groups
from image_gen.training.state import load_train_state
from image_gen.training.trainer import Trainer, train

WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).resolve().parents[2]


def test_rank_seed_is_distinct_and_reproducible():
    seeds = {rank_seed(s, r, 4) for s in range(3) for r in range(4)}
    assert len(seeds) == 12 and rank_seed(2, 3, 4) == 11
    with pytest.raises(ValueError, match="rank=4"):
        rank_seed(0, 4, 4)


def test_single_process_fallback(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    info = init_distributed()
    assert info == DistInfo() and info.is_main and not info.distributed
    assert mean_metrics({"a": 1.5}, info) == {"a": 1.5}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2"):
        init_distributed()


def test_split_groups_cover_the_step_once():
    pieces = [split_groups(8, DistInfo(rank=r, world_size=2), accum=2) for r in range(2)]
    flat = [i for rank in pieces for s in rank for i in range(s.start, s.stop)]
    assert flat == list(range(8))
    # (2 ranks x 1) and (1 rank x 2) cut the step into the same micro-batches
    assert split_groups(8, DistInfo(), accum=2) == [slice(0, 4), slice(4, 8)]
    assert split_groups(8, DistInfo(rank=1, world_size=2)) == [slice(4, 8)]
    with pytest.raises(ValueError, match="n_classes=6"):
        split_groups(6, DistInfo(rank=0, world_size=4))


def test_grad_accum_changes_only_the_field_statistics(tmp_path, fake_root, mae_path):
    """Accumulation feeds the same generator outputs to per-micro-batch fields: near 1 pass, not equal."""
    one = Trainer(tiny_config(str(tmp_path / "a"), str(fake_root), mae_path, max_steps=1))
    two = Trainer(tiny_config(str(tmp_path / "b"), str(fake_root), mae_path, max_steps=1, grad_accum=2))
    one.train_step(), two.train_step()
    diffs = [(a - b).abs().max() for a, b in zip(one.model.parameters(), two.model.parameters(), strict=True)]
    assert 0 < max(diffs) < 0.1


@pytest.mark.slow
def test_two_ranks_match_one_process_and_resume_on_one(tmp_path, fake_root, mae_path):
    """2 gloo ranks x 2 classes == 1 process x 2 micro-batches of 2 classes; the checkpoint resumes in 1."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
    ]
    ddp_dir = tmp_path / "ddp"
    result = subprocess.run(
        [*cmd, str(ddp_dir), str(fake_root), mae_path, "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(x) for x in result.stdout.replace("}{", "}\n{").splitlines() if x.startswith("{")]
    assert sorted(x["rank"] for x in lines) == [0, 1] and lines[0]["checksum"] == lines[1]["checksum"]
    assert not (ddp_dir / "run" / "rank1").exists()
    metrics = (ddp_dir / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2  # rank 0 alone logs

    single = train(tiny_config(str(tmp_path / "single"), str(fake_root), mae_path, max_steps=2, grad_accum=2))
    ddp_tensors, _ = load_train_state(ddp_dir / "run" / "train_state.safetensors")
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp_tensors[f"model.{name}"], value, rtol=1e-5, atol=1e-6)

    # resume the 2-rank checkpoint in one process (grad_accum=2) and compare with 3 straight steps
    resumed = train(tiny_config(str(ddp_dir), str(fake_root), mae_path, max_steps=3, grad_accum=2))
    straight = train(tiny_config(str(tmp_path / "straight"), str(fake_root), mae_path, max_steps=3,
                                 grad_accum=2))
    assert resumed.step == 3
    for a, b in zip(resumed.model.parameters(), straight.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_fsdp_two_ranks_match_one_process_and_resume_sharded(tmp_path, fake_root, mae_path):
    """fsdp=True: 2 gloo ranks == 1 process with 2 micro-batches (weights, EMA, AdamW state), and the
    2-rank FSDP checkpoint resumes sharded on 2 ranks like 3 straight steps in one process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd.append(str(WORKER))
    fsdp_dir = tmp_path / "fsdp"
    for steps in ("2", "3"):  # the second run resumes the 2-rank checkpoint, re-sharding it
        result = subprocess.run(
            [*cmd, str(fsdp_dir), str(fake_root), mae_path, steps, "fsdp"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        lines = [json.loads(x) for x in result.stdout.replace("}{", "}\n{").splitlines() if x.startswith("{")]
        assert sorted(x["rank"] for x in lines) == [0, 1] and lines[0]["checksum"] == lines[1]["checksum"]
        assert all(x["sharded"] for x in lines)  # the parameters really are FSDP shards
        if steps == "2":
            fsdp_tensors, meta = load_train_state(fsdp_dir / "run" / "train_state.safetensors")
            assert meta["step"] == 2

    single = train(tiny_config(str(tmp_path / "single"), str(fake_root), mae_path, max_steps=2, grad_accum=2))
    single_tensors, single_meta = single.resume_state()
    assert fsdp_tensors.keys() == single_tensors.keys()
    for name, value in single_tensors.items():  # model, EMA, optimizer moments, queue, streams: full tensors
        torch.testing.assert_close(fsdp_tensors[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert meta["optimizer"]["indices"] == single_meta["optimizer"]["indices"]

    straight = train(tiny_config(str(tmp_path / "straight"), str(fake_root), mae_path, max_steps=3,
                                 grad_accum=2))
    resumed, _ = load_train_state(fsdp_dir / "run" / "train_state.safetensors")
    for name, value in straight.resume_state()[0].items():
        if name.startswith(("model.", "ema.")):
            torch.testing.assert_close(resumed[name], value, rtol=1e-5, atol=1e-6, msg=name)
