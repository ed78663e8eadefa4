"""1-step smoke of drifting-train, drifting-eval and drifting-bench on tiny configs (real env, policies)."""

import json
import shutil
import sys

import numpy as np
import pytest
from training_fakes import compose_config, train_overrides, write_tiny_pusht_store

from drifting_policy.evaluation.bench import main as bench_main
from drifting_policy.evaluation.bench import run_bench
from drifting_policy.evaluation.eval import main as eval_main
from drifting_policy.evaluation.eval import run_eval
from drifting_policy.training.checkpoint import load_checkpoint
from drifting_policy.training.setup import run_training
from drifting_policy.training.train import main as train_main


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    return write_tiny_pusht_store(tmp_path_factory.mktemp("data") / "tiny.zarr")


@pytest.fixture(scope="module")
def drifting_run(tiny_store, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "drifting"
    overrides = [*train_overrides(tiny_store, run_dir, "drifting"), "train.save_every=1"]
    metrics = run_training(compose_config("train", overrides))
    return run_dir, metrics


def test_train_writes_run_folder_and_evaluates(drifting_run):
    run_dir, metrics = drifting_run
    assert {"train/loss", "val/loss", "eval/mean_score", "eval/success_rate"} <= set(metrics)
    assert (run_dir / "config.yaml").exists() and (run_dir / "metrics.jsonl").exists()
    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest")
    assert ckpt.train_state["step"] == 2 and ckpt.config["task"]["name"] == "pusht_state"
    info = ckpt.config["dataset_info"]
    assert info["train_episodes"] == 3 and info["train_windows"] > 0
    assert ckpt.shape_meta["obs"]["keypoint"]["shape"] == [9, 2]
    assert len(list((run_dir / "videos").rglob("*.gif"))) == 1
    summary = json.loads((run_dir / "eval" / "step_0000002.json").read_text())
    assert summary["eval"]["seeds"] == [100000, 100001]


def test_train_diffusion_one_step(tiny_store, tmp_path):
    overrides = train_overrides(tiny_store, tmp_path / "diffusion", "diffusion")
    overrides += ["train.max_steps=1", "train.eval_at_end=false", "policy.num_inference_steps=2"]
    metrics = run_training(compose_config("train", overrides))
    assert np.isfinite(metrics["train/loss"]) and "eval/mean_score" not in metrics


def test_eval_from_checkpoint_alone(drifting_run, tmp_path):
    run_dir, _ = drifting_run
    cfg = compose_config("eval", [f"checkpoint={run_dir}/checkpoints/latest", "n_seeds=3", "n_envs=3",
                                  "n_videos=0", "max_steps=8", f"output={tmp_path / 'summary.json'}"])
    summary = run_eval(cfg)
    assert summary["step"] == 2 and summary["nfe"] == 1 and summary["eval/n_episodes"] == 3.0
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["eval"]["seeds"] == [100000, 100001, 100002] and len(written["eval"]["scores"]) == 3


def test_eval_action_horizon_sets_how_often_the_policy_replans(drifting_run, tmp_path, monkeypatch):
    """action_horizon=k executes k steps per chunk: an 8-step episode takes 8/k predictions (8 with the
    checkpoint's own horizon of 8 -> 1); values the chunk cannot hold are refused naming the range."""
    from drifting_policy.policy.drifting import DriftingPolicy

    run_dir, _ = drifting_run
    calls = []
    original = DriftingPolicy.predict_action
    monkeypatch.setattr(DriftingPolicy, "predict_action",
                        lambda self, obs, generator=None: calls.append(1) or original(self, obs, generator))
    for horizon, predictions in ((None, 1), (2, 4), (4, 2)):
        calls.clear()
        extra = [] if horizon is None else [f"action_horizon={horizon}"]
        settings = [f"checkpoint={run_dir}/checkpoints/latest", "n_seeds=2", "n_envs=2", "n_videos=0",
                    "max_steps=8", f"output={tmp_path / 's.json'}", *extra]
        run_eval(compose_config("eval", settings))
        assert len(calls) == predictions, (horizon, len(calls))
    with pytest.raises(ValueError, match="action_horizon=20: expected 1..15"):
        run_eval(compose_config("eval", [f"checkpoint={run_dir}/checkpoints/latest", "action_horizon=20"]))


def test_eval_candidates_draw_n_chunks_per_replan_and_tag_the_output(drifting_run, monkeypatch):
    """candidates=N: every replan is one backbone call over N rows per environment; the evaluation is written
    with the _n<N> tag; N < 1 is refused."""
    from drifting_policy.policy.drifting import DriftingPolicy

    run_dir, _ = drifting_run
    rows = []
    original = DriftingPolicy.generate
    monkeypatch.setattr(DriftingPolicy, "generate", lambda self, cond, num, generator=None: rows.append(
        (cond.shape[0], num)) or original(self, cond, num, generator))
    summary = run_eval(compose_config("eval", [f"checkpoint={run_dir}/checkpoints/latest", "n_seeds=2",
                                               "n_envs=2", "n_videos=0", "max_steps=8", "candidates=3"]))
    assert rows == [(2, 3)]  # one replan of 2 environments, 3 draws each
    assert summary["nfe"] == 1 and (run_dir / "eval" / "latest_n3.json").exists()
    with pytest.raises(ValueError, match="candidates=0: expected >= 1"):
        run_eval(compose_config("eval", [f"checkpoint={run_dir}/checkpoints/latest", "candidates=0"]))


def test_eval_averages_checkpoints_of_a_run_and_tables_several_runs(drifting_run, capsys):
    run_dir, _ = drifting_run
    fast = ["n_seeds=1", "n_envs=1", "n_videos=0", "max_steps=8"]
    merged = run_eval(compose_config("eval", [f"checkpoint={run_dir}/checkpoints/step_*", "last=2", *fast]))
    assert merged["steps"] == [1, 2] and len(merged["eval/mean_score_per_checkpoint"]) == 2
    assert merged["eval/mean_score"] == pytest.approx(np.mean(merged["eval/mean_score_per_checkpoint"]))
    twin = run_dir.parent / "twin"
    shutil.copytree(run_dir / "checkpoints", twin / "checkpoints", dirs_exist_ok=True)
    both = run_eval(compose_config("eval", [f"checkpoint={run_dir.parent}/*/checkpoints/latest*", *fast]))
    assert sorted(both["runs"]) == sorted([str(run_dir), str(twin)])
    assert "| policy | NFE | mean score" in capsys.readouterr().out


def run_console(monkeypatch, capsys, main, args: list[str]) -> dict:
    """Run a hydra console entry point in-process; returns its last printed line parsed as JSON."""
    monkeypatch.setattr(sys, "argv", ["entry-point", *args])
    main()
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_console_last_line_is_json(drifting_run, monkeypatch, capsys):
    run_dir, _ = drifting_run
    args = [f"checkpoint={run_dir}/checkpoints/latest", "n_seeds=1", "n_envs=1", "max_steps=8", "n_videos=0",
            "train_seeds=true"]
    last = run_console(monkeypatch, capsys, eval_main, args)
    assert last["eval/n_episodes"] == 1.0 and "train/mean_score" in last


def test_train_and_bench_consoles(tiny_store, tmp_path, monkeypatch, capsys):
    args = [*train_overrides(tiny_store, tmp_path / "console", "regression"), "train.max_steps=1",
            "train.eval_at_end=false"]
    assert "train/loss" in run_console(monkeypatch, capsys, train_main, args)
    last = run_console(monkeypatch, capsys, bench_main, ["policy.mlp_width=16", "warmup=0", "repeats=1",
                                                         "ddim_steps=2"])
    assert last["ddim2_ms"] > 0


def test_bench_reports_latency_keys():
    cfg = compose_config("bench", ["policy.mlp_width=16", "policy.mlp_depth=1", "warmup=1", "repeats=2",
                                   "ddim_steps=2"])
    result = run_bench(cfg)
    for key in ("drifting_ms", "drifting_best8_ms", "ddpm100_ms", "ddim2_ms", "regression_ms",
                "speedup_ddpm100"):
        assert result[key] > 0, key
    assert result["ddpm100_ms"] > result["drifting_ms"]  # 100 network evaluations vs 1
    assert result["ddpm100_ms"] > result["drifting_best8_ms"]  # 8 draws are still one evaluation deep


@pytest.mark.parametrize("train", ["cpu", "gpu"])
@pytest.mark.parametrize("task", ["pusht_state", "pusht_image", "pusht_rawstate"])
@pytest.mark.parametrize("policy", ["drifting", "diffusion", "regression"])
def test_every_config_combination_validates(policy, task, train):
    from drifting_policy.policy import POLICIES
    from drifting_policy.training.trainer import TrainConfig

    cfg = compose_config("train", [f"policy={policy}", f"task={task}", f"train={train}"])
    options = {key: value for key, value in cfg["policy"].items() if key != "name"}
    config = POLICIES[cfg["policy"]["name"]].config_class(**options)
    TrainConfig(**cfg["train"])
    assert cfg["run_dir"] == f"runs/{task}_{policy}_s0"
    assert config.backbone == ("unet" if train == "gpu" else "mlp")
    assert (config.crop_shape == (84, 84)) == (task == "pusht_image")
    assert cfg["train"]["batch_size"] == (64 if policy == "drifting" and train == "cpu" else 256)


def test_evaluating_on_the_demonstrations_seeds_is_refused():
    from drifting_policy.evaluation.runner import RunnerConfig
    from drifting_policy.training.setup import check_test_seeds_unseen

    store = {"seed": 0, "n_seeds": 200}
    check_test_seeds_unseen(RunnerConfig(seed_start=100000, n_seeds=50), store)
    check_test_seeds_unseen(RunnerConfig(seed_start=0, n_seeds=50), {})  # provenance unknown: allowed
    with pytest.raises(ValueError, match="collected on"):
        check_test_seeds_unseen(RunnerConfig(seed_start=150, n_seeds=100), store)


def test_drifting_unet_recipe_is_drifting_with_only_its_unet_settings_changed():
    from drifting_policy.policy import POLICIES

    def flat(tree: dict, prefix: str = "") -> dict:
        leaves = {}
        for key, value in tree.items():
            leaves.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict)
                          else {prefix + key: value})
        return leaves

    base = flat(compose_config("train", ["policy=drifting"]))
    recipe = flat(compose_config("train", ["policy=drifting_unet"]))
    changed = {key: (base.get(key), recipe.get(key)) for key in base.keys() | recipe.keys()
               if base.get(key) != recipe.get(key)}
    assert changed == {"policy.backbone": ("mlp", "unet"), "policy.noise_skip": (0.0, 0.5),
                       "policy.samples_per_obs": (8, 4), "train.batch_size": (64, 128)}
    recipe_tree = compose_config("train", ["policy=drifting_unet"])
    POLICIES["drifting"].config_class(**{k: v for k, v in recipe_tree["policy"].items() if k != "name"})
