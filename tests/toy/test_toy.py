"""2-D toy experiments: targets, scores, generator init, schedule, tiny training, determinism, entry point."""

import dataclasses
import math

import pytest
import torch

from drifting_policy.toy.data import TargetSpec, energy_distance, mode_masses, sample_target
from drifting_policy.toy.experiments import (
    ToyConfig,
    ToyGenerator,
    covers_both_modes,
    format_table,
    run_experiment,
    train_toy,
)

# A small network keeps training tests well under a second or two on one core.
SMALL = dict(hidden=64, depth=2, num_gen=64, num_pos=64, eval_samples=500, log_every=50)


def draw(name, n=20000, seed=0, **spec):
    return sample_target(TargetSpec(name, **spec), n, torch.Generator().manual_seed(seed))


def test_bimodal_moments():
    x = draw("bimodal", separation=3.0, mode_std=0.3)
    assert x.shape == (20000, 2) and x.dtype == torch.float32
    assert abs(x.mean(0)).max() < 0.06
    assert x[:, 0].var().item() == pytest.approx(9.0 + 0.09, rel=0.02)
    assert x[:, 1].std().item() == pytest.approx(0.3, rel=0.03)
    assert (x[:, 0] > 0).float().mean().item() == pytest.approx(0.5, abs=0.015)


def test_checkerboard_support_and_moments():
    x = draw("checkerboard")
    assert x.min() >= -2.0 and x.max() < 2.0
    cells = torch.floor(x).sum(1).remainder(2)
    assert torch.all(cells == 0), "every sample lies on a cell with floor(x) + floor(y) even"
    assert abs(x.mean(0)).max() < 0.04
    torch.testing.assert_close(x.var(0), torch.full((2,), 4.0 / 3.0), rtol=0.03, atol=0)


def test_swiss_roll_radius_range_and_gaussian_moments():
    radius = draw("swiss_roll").norm(dim=1)
    assert radius.min() > 0.75 and radius.max() < 3.25
    assert radius.mean().item() == pytest.approx(2.0, abs=0.05)  # t uniform -> radius uniform on [1, 3]
    x = draw("gaussian", center=(1.0, -2.0), mode_std=0.5)
    torch.testing.assert_close(x.mean(0), torch.tensor([1.0, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(x.std(0), torch.tensor([0.5, 0.5]), atol=0.01, rtol=0)


def test_target_spec_rejects_unknown_name():
    with pytest.raises(ValueError, match="swirl"):
        TargetSpec("swirl")


def test_energy_distance_zero_for_identical_and_grows_with_shift():
    a = draw("gaussian", n=800, seed=1)
    assert energy_distance(a, a).item() == pytest.approx(0.0, abs=1e-12)
    same = energy_distance(a, draw("gaussian", n=800, seed=2)).item()
    shifts = [energy_distance(a, a + torch.tensor([d, 0.0])).item() for d in (0.25, 0.5, 1.0, 2.0)]
    assert same < shifts[0] and all(s < t for s, t in zip(shifts, shifts[1:], strict=False))
    # two point masses |d| apart: 2 |d| - 0 - 0
    points = torch.zeros(10, 2)
    assert energy_distance(points, points + torch.tensor([3.0, 4.0])).item() == pytest.approx(10.0)


def test_mode_masses():
    spec = TargetSpec("bimodal", separation=3.0, mode_std=0.3)
    on_right = torch.tensor([[3.0, 0.0], [3.5, 0.2], [2.2, 0.0], [0.0, 0.0]])
    # (2.2, 0) is 0.8 < 3 std from the right mode; the origin is in neither
    torch.testing.assert_close(mode_masses(on_right, spec), torch.tensor([0.0, 0.75]))
    assert not covers_both_modes({"minority_mass": 0.0}) and covers_both_modes({"minority_mass": 0.45})


def test_generator_starts_as_the_configured_gaussian():
    model = ToyGenerator(noise_dim=8, hidden=16, depth=2, init_offset=(2.0, -1.0), init_std=0.3)
    noise = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    expected = torch.tensor([2.0, -1.0]) + 0.3 * noise[:, :2]
    torch.testing.assert_close(model(noise), expected)


def test_temperature_schedule_anneals_geometrically_then_holds():
    config = ToyConfig(steps=100, temperatures=(0.02, 0.2), temperature_start_factor=10.0,
                       temperature_anneal_fraction=0.5)
    assert config.temperatures_at(0) == pytest.approx((0.2, 2.0))
    assert config.temperatures_at(25) == pytest.approx((0.02 * math.sqrt(10), 0.2 * math.sqrt(10)))
    assert config.temperatures_at(50) == pytest.approx((0.02, 0.2))
    assert config.temperatures_at(99) == pytest.approx((0.02, 0.2))
    fixed = dataclasses.replace(config, temperature_start_factor=1.0)
    assert fixed.temperatures_at(0) == pytest.approx((0.02, 0.2))


@pytest.mark.parametrize("field, value", [("steps", 0), ("num_gen", 1), ("lr_schedule", "linear"),
                                          ("temperature_anneal_fraction", 0.0), ("init_offset", (1.0,))])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ToyConfig(**{field: value})


def test_tiny_training_moves_generator_onto_target_gaussian():
    target = TargetSpec("gaussian", center=(2.0, 0.0), mode_std=0.3)
    config = ToyConfig(target=target, init_offset=(-2.0, 0.0), init_std=0.3, steps=200, seed=3, **SMALL)
    run = train_toy(config)
    with torch.no_grad():
        samples = run.model(torch.randn(2000, config.noise_dim, generator=torch.Generator().manual_seed(7)))
    assert (samples.mean(0) - torch.tensor([2.0, 0.0])).norm() < 0.15
    assert run.scores["energy_distance"] < 0.05  # started at ~ 2 * 4 = 8
    assert run.scores["minority_mass"] > 0.8  # "minority" of one mode: the mass within 3 std of it
    assert len(run.history) == 5 and {"train/loss", "train/drift_rms_0"} <= run.history[0].keys()


def test_same_seed_same_numbers_and_other_seed_differs():
    config = ToyConfig(steps=20, **SMALL)
    first, second = train_toy(config), train_toy(config)
    assert first.scores["energy_distance"] == second.scores["energy_distance"]
    assert first.history == second.history
    other = train_toy(dataclasses.replace(config, seed=2))
    assert other.scores["energy_distance"] != first.scores["energy_distance"]


@pytest.mark.slow
def test_collapsed_start_escapes_with_annealed_temperatures():
    target = TargetSpec("bimodal", separation=3.0, mode_std=0.3)
    config = ToyConfig(target=target, init_offset=(3.0, 0.0), init_std=0.3, steps=600, seed=5)
    run = train_toy(config)
    assert covers_both_modes(run.scores), run.scores


def test_format_table():
    table = format_table([{"case": "a", "x": 0.123456, "ok": True}], ("case", "x", "ok"))
    assert table.splitlines() == ["| case | x | ok |", "|---|---|---|", "| a | 0.1235 | yes |"]


def test_run_experiment_writes_tables_runs_and_figures(tmp_path):
    text = run_experiment("summary", tmp_path, {**SMALL, "steps": 4, "eval_samples": 100})
    assert "| between, x10 anneal | 1 |" in text and "| collapsed, fixed | 1 |" in text
    assert (tmp_path / "fig3.md").exists()
    for name in ("toy_fig3_evolution.png", "toy_fig3_curves.png"):
        assert (tmp_path / "fig3" / name).stat().st_size > 1000
    lines = (tmp_path / "fig3" / "far__fixed_seed1" / "metrics.jsonl").read_text().splitlines()
    assert lines[-1].startswith('{"eval/energy_distance"')
    assert (tmp_path / "fig3" / "far__fixed_seed1" / "config.yaml").exists()
    with pytest.raises(ValueError, match="experiment"):
        run_experiment("fig5", tmp_path)


def test_hydra_config_composes_and_names_only_toy_config_fields():
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="configs.toy", version_base=None):
        cfg = compose(config_name="toy", overrides=["experiment=ablations", "overrides.steps=10"])
    fields = {f.name for f in dataclasses.fields(ToyConfig)}
    assert set(cfg.overrides) <= fields
    assert cfg.experiment == "ablations" and cfg.overrides.steps == 10
    assert cfg.out_dir == "runs/toy_ablations"


def test_console_entry_point_runs_the_summary(tmp_path, monkeypatch, capsys):
    from drifting_policy.toy.experiments import main

    monkeypatch.setattr("sys.argv", ["drifting-toy", f"out_dir={tmp_path}", "overrides.steps=2",
                                     "overrides.num_gen=8", "overrides.num_pos=8", "+overrides.hidden=16",
                                     "+overrides.eval_samples=100"])
    main()
    printed = capsys.readouterr().out
    assert "| far, fixed | 1 |" in printed and str(tmp_path / "fig3") in printed
    assert (tmp_path / "fig3" / "toy_fig3_evolution.png").exists()
