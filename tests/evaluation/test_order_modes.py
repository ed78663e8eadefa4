"""Order modes: counts, entropy, TV against the expert, labels from runner records and from a store."""

import json
import math

import numpy as np
import pytest
import zarr

from drifting_policy.evaluation.order_modes import (
    entropy,
    expert_labels,
    main,
    mode_counts,
    rollout_labels,
    summarise,
    total_variation,
)


def test_total_variation_is_zero_for_equal_shares_and_one_for_disjoint_modes():
    assert total_variation({"a": 2, "b": 6}, {"a": 1, "b": 3}) == pytest.approx(0.0)
    assert total_variation({"a": 5}, {"b": 3, "c": 1}) == pytest.approx(1.0)
    assert total_variation({"a": 3, "b": 1}, {"a": 1, "b": 1}) == pytest.approx(0.25)


def test_entropy_of_even_four_way_split_is_log_four_and_one_mode_is_zero():
    assert entropy(mode_counts(["a", "b", "c", "d"] * 5)) == pytest.approx(math.log(4))
    assert entropy({"a": 7}) == 0.0
    with pytest.raises(ValueError, match="no episodes"):
        entropy({})


def test_blockpush_labels_from_runner_records():
    records = {"first_block": [1, 0, -1, 0], "zones": [[0, 1], [1, 0], [-1, -1], [-1, 0]]}
    assert rollout_labels("blockpush", records) == ["c1 first, c0 in z0", "c0 first, c0 in z1", "none",
                                                    "c0 first, c0 in no zone"]
    with pytest.raises(ValueError, match="info_records=\\[first_block,zones\\]"):
        rollout_labels("blockpush", {"first_block": [0]})


def test_kitchen_labels_first_task_and_full_order():
    records = {"completed_tasks": [["microwave", "light switch"], [], ["kettle"]]}
    assert rollout_labels("kitchen", records) == ["microwave", "none", "kettle"]
    assert rollout_labels("kitchen", records, depth=4)[0] == "microwave > light switch"


def test_summary_against_the_expert_store(tmp_path):
    store = tmp_path / "bp.zarr"
    meta = zarr.open_group(str(store), mode="w").create_group("meta")
    meta["first_in"] = np.array([0, 0, 1, 1])
    meta["zone_of_block0"] = np.array([0, 1, 0, 1])
    expert = expert_labels("blockpush", store)
    summary = summarise(["c0 first, c0 in z0"] * 4, expert)  # a policy that collapsed onto one mode
    assert summary["n_modes"] == 1 and summary["entropy"] == 0.0
    assert summary["tv_to_expert"] == pytest.approx(0.75)
    # half the episodes reach no zone: TV over all modes counts that, tv_completed only the order spread
    half = summarise(["none", "none", "c0 first, c0 in z0", "c1 first, c0 in z1"], expert)
    assert half["tv_to_expert"] == pytest.approx(0.5) and half["tv_completed"] == pytest.approx(0.5)
    spread = summarise(["none"] * 4 + expert, expert)
    assert spread["tv_to_expert"] == pytest.approx(0.5) and spread["tv_completed"] == pytest.approx(0.0)
    assert summarise(["none"] * 3, expert)["tv_completed"] is None
    assert summarise(expert, expert)["entropy"] == pytest.approx(math.log(4))

    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"eval": {"info_records": {"first_block": [0, 1],
                                                                "zones": [[0, 1], [1, 0]]}}}))
    out = tmp_path / "new_folder" / "summary.json"  # --out makes its folder
    main(["summarise", "--task", "blockpush", "--store", str(store), "--eval", f"drifting={evaluation}",
          "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["drifting"]["counts"] == {"c0 first, c0 in z0": 1, "c1 first, c0 in z1": 1}
    assert result["drifting"]["tv_to_expert"] == pytest.approx(0.5)
    # two evaluations (e.g. two checkpoints on the same seeds) are pooled: 4 episodes, 3 of one mode
    again = tmp_path / "eval2.json"
    again.write_text(json.dumps({"eval": {"info_records": {"first_block": [0, 0],
                                                           "zones": [[0, 1], [0, 1]]}}}))
    main(["summarise", "--task", "blockpush", "--store", str(store),
          "--eval", f"drifting={evaluation},{again}", "--out", str(out)])
    pooled = json.loads(out.read_text())["drifting"]
    assert pooled["n_episodes"] == 4
    assert pooled["counts"] == {"c0 first, c0 in z0": 3, "c1 first, c0 in z1": 1}
    with pytest.raises(SystemExit, match="no such eval JSON"):
        main(["summarise", "--task", "blockpush", "--store", str(store), "--eval",
              f"drifting={evaluation},{tmp_path / 'missing.json'}"])
    main(["plot", str(out), "--figure", str(tmp_path / "modes.png")])
    assert (tmp_path / "modes.png").stat().st_size > 1000
