"""drifting-demo: commands the pipeline runs, config checks, summary parsing and the table."""

import json
from pathlib import Path

import pytest

from drifting_policy.evaluation.demo import (
    DemoConfig,
    eval_commands,
    last_json,
    parse_args,
    row,
    table,
    train_command,
)


def test_every_policy_trains_the_same_matched_step_budget_on_the_demo_store():
    cfg = DemoConfig(policies=("drifting", "diffusion", "regression"), steps=123, data="data/x.zarr")
    commands = [train_command(cfg, p) for p in cfg.policies]
    for policy, command in zip(cfg.policies, commands, strict=True):
        assert f"policy={policy}" in command
        assert "train.max_steps=123" in command and "task.dataset.zarr_path=data/x.zarr" in command
        assert f"run_dir=runs/demo/{policy}" in command
        assert "train.eval_at_end=false" in command  # evaluation happens once, in the eval stage


def test_ddim_rows_reuse_the_diffusion_checkpoint():
    cfg = DemoConfig(policies=("drifting", "diffusion"), ddim_steps=(10, 16), n_seeds=7)
    evals = dict(eval_commands(cfg))
    assert list(evals) == ["Drifting-1", "DDPM-100", "DDIM-10", "DDIM-16"]
    ckpt = "checkpoint=runs/demo/diffusion/checkpoints/latest"
    assert all(ckpt in evals[k] for k in ("DDPM-100", "DDIM-10", "DDIM-16"))
    assert "num_inference_steps=16" in evals["DDIM-16"] and "sampler=ddim" not in evals["DDPM-100"]
    assert all("n_seeds=7" in c for c in evals.values())


@pytest.mark.parametrize("kwargs, field", [({"policies": ("drifting", "flow")}, "policies"),
                                           ({"policies": ()}, "policies"), ({"steps": 0}, "steps"),
                                           ({"ddim_steps": (0,)}, "ddim_steps")])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DemoConfig(**kwargs)


def test_parse_args_and_table_from_an_eval_summary():
    cfg = parse_args(["steps=50", "policies=[drifting]", "ddim_steps=[]"])
    assert cfg.steps == 50 and cfg.policies == ("drifting",) and cfg.ddim_steps == ()
    summary = {"nfe": 1, "step": 50, "train_minutes": 0.5, "eval/mean_score": 0.4321,
               "eval/mean_score_ci_low": 0.3, "eval/mean_score_ci_high": 0.55, "eval/success_rate": 0.1,
               "eval/success_rate_ci_low": 0.02, "eval/success_rate_ci_high": 0.2,
               "eval/policy_ms_per_chunk": 1.25}
    parsed = last_json('progress...\n{"a": 1}\n' + json.dumps(summary) + "\n")
    lines = table([row("Drifting-1", parsed)]).splitlines()
    assert lines[2] == "| Drifting-1 | 1 | 0.432 [0.300, 0.550] | 0.10 [0.02, 0.20] | 1.25 | 50 | 0.5 |"
    with pytest.raises(ValueError, match="JSON summary"):
        last_json("no json here")


def test_the_real_pipeline_runs_twice_in_the_same_folders(tmp_path):
    """collect -> train -> evaluate through the real entry points, tiny; the second run reuses the data and
    the finished runs (once it stopped with a FileExistsError) and reports the same numbers."""
    from drifting_policy.evaluation.demo import run_demo

    cfg = DemoConfig(out=str(tmp_path / "demo"), data=str(tmp_path / "demo.zarr"), episodes=5, steps=3,
                     n_seeds=2, policies=("drifting", "diffusion"), ddim_steps=())
    first = run_demo(cfg)
    checkpoint = tmp_path / "demo" / "drifting" / "checkpoints" / "latest.safetensors"
    trained = checkpoint.read_bytes()
    second = run_demo(cfg)
    assert [r["method"] for r in first] == ["Drifting-1", "DDPM-100"]
    timing = ("ms",)  # latency is measured anew; everything else must repeat exactly
    assert [dict(r, ms=0) for r in second] == [dict(r, ms=0) for r in first]
    assert all(r[key] > 0 for r in second for key in timing)
    assert checkpoint.read_bytes() == trained  # nothing retrained


def test_the_gif_replays_solved_seeds_until_a_replay_succeeds(tmp_path, monkeypatch):
    """Only seeds the policy solved in the table's evaluation are replayed, each try with a new sampling
    seed, and a replay counts only if it succeeded too; no solved seed -> no GIF, no replay."""
    from drifting_policy.evaluation import demo

    cfg = DemoConfig(out=str(tmp_path))
    (tmp_path / "eval_drifting.json").write_text(json.dumps(
        {"eval": {"seeds": [100000, 100001, 100002], "successes": [False, True, True]}}))
    replays = []

    def fake_run(commands, logs):  # the replay of seed 100001 fails, 100002 succeeds
        args = dict(a.split("=", 1) for a in commands[0][3:])
        replays.append((int(args["seed_start"]), int(args["sampling_seed"])))
        ok = args["seed_start"] == "100002"
        Path(args["output"]).parent.mkdir(parents=True, exist_ok=True)
        Path(args["output"]).write_text(json.dumps(
            {"eval": {"successes": [ok], "videos": [f"{args['video_dir']}/x.gif"]}}))
        return [""]

    monkeypatch.setattr(demo, "run_parallel", fake_run)
    gif = demo.film_success(cfg)
    assert replays == [(100001, 0), (100002, 1)]
    assert gif == tmp_path / "gif" / "1" / "x.gif"
    (tmp_path / "eval_drifting.json").write_text(json.dumps({"eval": {"seeds": [1], "successes": [False]}}))
    replays.clear()
    assert demo.film_success(cfg) is None and replays == []


def test_the_contact_strip_shows_first_last_and_evenly_spaced_frames(tmp_path):
    from PIL import Image

    from drifting_policy.evaluation.demo import contact_strip

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    frames = [Image.new("RGB", (6, 4), colour) for colour in colours]
    frames[0].save(tmp_path / "m.gif", save_all=True, append_images=frames[1:], duration=100)
    strip = Image.open(contact_strip(tmp_path / "m.gif", tmp_path / "s.png")).convert("RGB")
    assert strip.size == (24, 4)
    shown = [strip.getpixel((6 * k + 3, 2)) for k in range(4)]
    assert shown == [colours[0], colours[1], colours[3], colours[4]]  # frames round(k * 4 / 3)
