"""image-gen-train killed for real (SIGKILL) at chosen and random points, then resumed: the finished run is
bit-identical to one that was never interrupted (weights, EMA, AdamW, step generator, queue and data stream,
and the metric rows)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file
from tiny_configs import tiny_train_overrides

from drifting_policy.common.faults import FAILPOINT_ENV
from image_gen.training.state import read_state_metadata

# wall-clock and CPU time: differ by nature
TIME_KEYS = ("train/steps_per_s", "train/images_per_s", "train/minutes", "train/cpu_minutes")
SIGKILL_STATUS = -signal.SIGKILL
STEPS = 12


def start(out_dir, fake_root, mae_path, failpoint: str | None = None) -> subprocess.Popen:
    """The real console script's module (hydra, configs/image_gen/smoke.yaml) on the tiny run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(FAILPOINT_ENV, None)
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    overrides = tiny_train_overrides(str(out_dir), str(fake_root), mae_path, max_steps=STEPS,
                                     checkpoint_every=2, sample_every=6)
    return subprocess.Popen([sys.executable, "-m", "image_gen.train", *overrides], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def lines(run_dir) -> list[str]:
    path = run_dir / "metrics.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def rows(run_dir) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS} for line in lines(run_dir)]


def test_killed_runs_resume_bit_identically(tmp_path, fake_root, mae_path):
    reference = start(tmp_path / "reference", fake_root, mae_path)  # alongside the crashes: 2 cores
    crashed = tmp_path / "crashed" / "run"

    # 1. killed inside the 3rd atomic write (step 4's model.safetensors: complete, not yet renamed)
    killed = start(crashed.parent, fake_root, mae_path, "checkpoint_write:3")
    assert killed.wait(timeout=120) == SIGKILL_STATUS, killed.stderr.read()
    assert list(crashed.glob(".*.tmp")), "the kill should leave the unrenamed file"
    assert read_state_metadata(crashed / "train_state.safetensors")["step"] == 2  # the old one, whole
    # 2. resumed, killed halfway through appending its 2nd metrics row: step 4's, due before its checkpoint
    killed = start(crashed.parent, fake_root, mae_path, "metrics_append:2")
    assert killed.wait(timeout=120) == SIGKILL_STATUS, killed.stderr.read()
    assert not list(crashed.glob(".*.tmp")), "a resume removes the temporaries of killed writes"
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines(crashed)[-1])  # torn on disk
    assert read_state_metadata(crashed / "train_state.safetensors")["step"] == 2
    # 3. resumed, killed from outside at a random moment once it trains again
    killed = start(crashed.parent, fake_root, mae_path)
    before = len(lines(crashed))
    deadline = time.monotonic() + 60
    while len(lines(crashed)) <= before and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(random.Random(0).uniform(0.0, 0.3))
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    # 4. resumed to the end
    finished = start(crashed.parent, fake_root, mae_path)
    assert finished.wait(timeout=120) == 0, finished.stderr.read()
    assert reference.wait(timeout=120) == 0, reference.stderr.read()

    expected_run = tmp_path / "reference" / "run"
    for name in ("model.safetensors", "train_state.safetensors"):
        expected, got = load_file(str(expected_run / name)), load_file(str(crashed / name))
        assert sorted(got) == sorted(expected), name
        different = [key for key in expected if not expected[key].equal(got[key])]
        assert not different, f"{name}: tensors differ after the crashes: {different[:5]}"
    assert rows(crashed) == rows(expected_run)
    assert [row["step"] for row in rows(crashed)] == list(range(1, STEPS + 1))
    grid = f"samples/step_{STEPS:06d}.png"
    assert (crashed / grid).read_bytes() == (expected_run / grid).read_bytes()
    assert not list(crashed.glob(".*.tmp"))
