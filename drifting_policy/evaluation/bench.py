"""`drifting-bench`: per-chunk `predict_action` latency at batch 1, Drifting (1 NFE) vs DDPM-100 vs DDIM-10.

    drifting-bench                          task=pusht_state, the policy config's backbone (MLP 3x512)
    drifting-bench policy.backbone=unet     the small ConditionalUnet1D, down_dims [64, 128, 256]
    drifting-bench train=gpu device=cuda    Diffusion Policy's UNet on a GPU
    drifting-bench checkpoint=runs/x/checkpoints/latest
        backbone and shapes from the checkpoint; its weights for the method it holds

Every method uses the same backbone options, obs encoder and shapes (randomly initialised weights unless a
checkpoint is given: latency does not depend on the values). Per method: `warmup` calls, then up to
`repeats` timed calls interleaved across methods (same machine load for each), median reported. Measured
with one thread and with torch's default thread count. The last printed line is a JSON object:
`drifting_ms`, `drifting_best8_ms` (8 draws per chunk in one batched call, `drifting-eval candidates=8`),
`ddpm100_ms`, `ddim10_ms`, `regression_ms`, `speedup_ddpm100`, `speedup_ddim10` (one thread,
or `device` for a GPU), the same keys suffixed `_threads<N>` for the default thread count (when
`default_threads=true`), and `<method>_params`; on CUDA also `<method>_graph_ms`, the same call replayed
from a CUDA graph (`cuda_graph=false` skips it).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from collections.abc import Mapping
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from drifting_policy.common.entry import check_overrides, report_user_errors
from drifting_policy.training.checkpoint import load_policy, read_metadata, shape_meta_from_json
from drifting_policy.training.setup import register_train_defaults


def methods(ddim_steps: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """Benchmark name -> (policy name, options on top of the shared backbone options)."""
    return {"drifting": ("drifting", {}),
            "drifting_best8": ("drifting", {"candidates": 8}),  # 8 draws in one batched call (eval option)
            "ddpm100": ("diffusion", {"sampler": "ddpm", "num_inference_steps": 100}),
            f"ddim{ddim_steps}": ("diffusion", {"sampler": "ddim", "num_inference_steps": ddim_steps}),
            "regression": ("regression", {})}


def shared_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every policy shares (horizons, backbone, encoder): the same network for every method."""
    from drifting_policy.policy import PolicyConfig

    names = {field.name for field in dataclasses.fields(PolicyConfig)}
    return {key: value for key, value in options.items() if key in names}


def random_obs(shape_meta: Mapping[str, Any], obs_horizon: int, device: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    obs = {}
    for key, spec in shape_meta["obs"].items():
        shape = (1, obs_horizon, *spec["shape"])
        if spec["type"] == "rgb":
            obs[key] = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        else:
            obs[key] = torch.rand(shape, generator=generator) * 512
    return {key: value.to(device) for key, value in obs.items()}


def fitted_normalizer(shape_meta: Mapping[str, Any]):
    """Statistics over random data: the values do not matter for latency, only that every key exists."""
    from drifting_policy.policy.normalizer import Normalizer

    generator = torch.Generator().manual_seed(0)
    data = {key: torch.rand((16, *spec["shape"]), generator=generator) * 512
            for key, spec in shape_meta["obs"].items() if spec["type"] != "rgb"}
    data["action"] = torch.rand((16, *shape_meta["action"]["shape"]), generator=generator) * 512
    image_keys = [key for key, spec in shape_meta["obs"].items() if spec["type"] == "rgb"]
    return Normalizer().fit(data, image_keys=image_keys)


def build_policies(cfg: Mapping[str, Any]) -> tuple[dict[str, torch.nn.Module], dict[str, Any]]:
    """One policy per benchmarked method, same backbone; from the checkpoint's options when given."""
    from drifting_policy.policy import build_policy

    if cfg.get("checkpoint"):
        meta = read_metadata(cfg["checkpoint"])
        options, shape_meta = shared_options(meta["policy_options"]), shape_meta_from_json(meta["shape_meta"])
        loaded = load_policy(cfg["checkpoint"], device=cfg["device"])
    else:
        options = shared_options({k: v for k, v in cfg["policy"].items() if k != "name"})
        shape_meta = shape_meta_from_json(cfg["task"]["shape_meta"])
        loaded, meta = None, None
    policies = {}
    for bench_name, (policy_name, extra) in methods(cfg["ddim_steps"]).items():
        if loaded is not None and meta["policy_name"] == policy_name:
            policy = _copy_with(loaded, extra) if extra else loaded
        else:
            torch.manual_seed(0)
            policy = build_policy(policy_name, {**options, **extra}, shape_meta)
            policy.set_normalizer(fitted_normalizer(shape_meta))
        policies[bench_name] = policy.to(cfg["device"]).eval()
    return policies, {"options": options, "shape_meta": shape_meta}


def _copy_with(policy, extra: Mapping[str, Any]):
    """A copy of a loaded policy with its method's inference options (a diffusion sampler, drifting draws)."""
    clone = copy.deepcopy(policy)
    if "sampler" in extra:
        clone.set_sampler(extra["sampler"], extra["num_inference_steps"])
    else:
        clone.set_candidates(extra["candidates"])
    return clone


def time_policies(policies: Mapping[str, torch.nn.Module], obs: dict[str, torch.Tensor], warmup: int,
                  repeats: int, max_seconds: float, device: str) -> dict[str, float]:
    """Median milliseconds of one `predict_action` call (batch 1, one chunk) per method.

    Calls are interleaved (one call of each method per round), so every method sees the same machine
    load; rounds stop after `repeats`, or after `max_seconds` per method once 3 rounds are done.
    """
    generator = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in policies}
    with torch.inference_mode():
        for policy in policies.values():
            for _ in range(warmup):
                policy.predict_action(obs, generator=generator)
        sync()
        budget_end = time.perf_counter() + max_seconds * len(policies)
        for round_index in range(repeats):
            if round_index >= 3 and time.perf_counter() > budget_end:
                break
            for name, policy in policies.items():
                tic = time.perf_counter()
                policy.predict_action(obs, generator=generator)
                sync()
                times[name].append(time.perf_counter() - tic)
    return {name: 1000.0 * statistics.median(values) for name, values in times.items()}


def run_bench(cfg: Mapping[str, Any]) -> dict[str, Any]:
    default_threads = torch.get_num_threads()
    policies, info = build_policies(cfg)
    obs_horizon = info["options"].get("obs_horizon", 2)
    obs = random_obs(info["shape_meta"], obs_horizon, cfg["device"])
    ddim = f"ddim{cfg['ddim_steps']}"
    thread_counts = [1, default_threads] if cfg["device"] == "cpu" and cfg.get("default_threads") else [1]
    result: dict[str, Any] = {"device": cfg["device"], "backbone": info["options"].get("backbone")}
    for name, policy in policies.items():
        result[f"{name}_params"] = sum(p.numel() for p in policy.parameters())
    for index, threads in enumerate(dict.fromkeys(thread_counts)):
        torch.set_num_threads(threads)
        suffix = "" if index == 0 else f"_threads{threads}"
        timings = time_policies(policies, obs, cfg["warmup"], cfg["repeats"], cfg["max_seconds"],
                                cfg["device"])
        for name, ms in timings.items():
            result[f"{name}_ms{suffix}"] = ms
            print(f"{name:>12} threads={threads}: {ms:9.3f} ms per chunk")
        result[f"speedup_ddpm100{suffix}"] = result[f"ddpm100_ms{suffix}"] / result[f"drifting_ms{suffix}"]
        result[f"speedup_{ddim}{suffix}"] = result[f"{ddim}_ms{suffix}"] / result[f"drifting_ms{suffix}"]
    torch.set_num_threads(default_threads)
    if cfg["device"].startswith("cuda") and cfg.get("cuda_graph", True):
        result.update(time_graphed(policies, obs, cfg))
    return result


def time_graphed(policies: Mapping[str, torch.nn.Module], obs: dict[str, torch.Tensor],
                 cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`<method>_graph_ms`: the same calls replayed from a CUDA graph (drifting_policy/evaluation/
    cuda_graph.py); a policy whose predict_action cannot be captured reports `<method>_graph_error`."""
    from drifting_policy.evaluation.cuda_graph import GraphedPolicy

    graphed, out = {}, {}
    for name, policy in policies.items():
        try:
            graphed[name] = GraphedPolicy(policy, obs)
        except Exception as error:  # a capture failure is a result (e.g. a host sync inside the sampler)
            out[f"{name}_graph_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    timings = time_policies(graphed, obs, cfg["warmup"], cfg["repeats"], cfg["max_seconds"], cfg["device"])
    for name, ms in timings.items():
        out[f"{name}_graph_ms"] = ms
        print(f"{name:>12} cuda graph: {ms:9.3f} ms per chunk")
    return out


@hydra.main(config_path="../../configs", config_name="bench", version_base=None)
@report_user_errors
def _bench(cfg: DictConfig) -> None:
    result = run_bench(OmegaConf.to_container(cfg, resolve=True))
    print(json.dumps(result))


def main() -> None:
    register_train_defaults()
    report_user_errors(check_overrides)("configs", "bench")
    _bench()


if __name__ == "__main__":
    main()
