"""Console scripts of image_gen as real processes: a bad input is one line on stderr, `error: ...`, with exit
status 2 and no traceback, and a refused training start leaves no trace (no hydra outputs/, no run files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from drifting_policy.common.entry import TRACEBACK_ENV, USER_ERROR_EXIT

REPO = Path(__file__).resolve().parents[2]


def launch(args: list[str], cwd) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != TRACEBACK_ENV}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def one_line_error(process: subprocess.Popen) -> str:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == USER_ERROR_EXIT, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines() == [stderr.strip()], stderr
    assert stderr.startswith("error: "), stderr
    return stderr.strip()


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_bad_inputs_are_one_line_with_exit_status_2(tmp_path):
    # a policy checkpoint (drifting-train's metadata layout) and a damaged file given to the image tools
    policy = tmp_path / "latest.safetensors"
    save_file({"policy.weight": torch.zeros(2)}, str(policy),
              metadata={"format_version": "1", "policy_name": "drifting", "policy_options": "{}"})
    damaged = tmp_path / "model.safetensors"
    damaged.write_bytes(b"\x00" * 64)
    # hydra script: the default smoke run, whose folder holds a stray file but no checkpoint
    work = tmp_path / "work"
    (work / "runs" / "imagegen_smoke").mkdir(parents=True)
    (work / "runs" / "imagegen_smoke" / "notes.txt").write_text("mine")
    before = tree(work)

    train = launch(["image_gen.train"], work)  # started together: each pays its interpreter's start-up
    evaluate = launch(["image_gen.evaluate", "--checkpoint", str(policy), "--evaluator", "none"], tmp_path)
    sample = launch(["image_gen.sample", "--checkpoint", str(damaged)], tmp_path)

    message = one_line_error(train)
    assert "runs/imagegen_smoke holds ['notes.txt'] but no checkpoint" in message, message
    assert tree(work) == before  # no outputs/<date>/, no hydra log, nothing in the run folder
    message = one_line_error(evaluate)
    assert f"{policy} is a drifting-policy checkpoint" in message and "image generator" in message, message
    message = one_line_error(sample)
    assert f"{damaged}: not a readable safetensors file" in message, message
    assert not (tmp_path / "samples.png").exists()
