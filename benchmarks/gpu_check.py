"""`make gpu-check`: everything worth measuring on one GPU, in one command that fits ten minutes.

    .venv/bin/python benchmarks/gpu_check.py --device cuda      # on a GPU (`make gpu-check`)
    .venv/bin/python benchmarks/gpu_check.py --device cpu       # the same at a tiny size (CI proves it runs)

Parts (docs/gpu.md says how to read them):
    tests     pytest -m gpu: the fused field and the CUDA-graph tests on this device
    field     the grouped 3-temperature field, eager vs fused, against the memory floor: the bytes that must
              move (read gen and pos, write V) over the device's measured copy bandwidth
    latency   drifting-bench per chunk at batch 1: Drifting-1, DDIM-10, DDPM-100, eager and CUDA-graphed, for
              the MLP, the small UNet and Diffusion Policy's UNet (low-dim and with images)
    training  policy training steps/s (drifting vs diffusion, DP's UNet, batch 256), peak memory
    image_gen the ImageNet ablation recipe's generator step (DiT-B/2, latent MAE features, drift loss): img/s
Writes <out>/gpu_check.json (every number) and <out>/gpu_check.md (the tables); the last line printed is
the JSON path. CPU sizes are tiny and CPU times come from whatever else the machine runs: they prove the
command works, they measure nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE_GEN_RECIPE = ROOT / "configs" / "image_gen" / "imagenet_ablation_b2.yaml"
# (B, G, P, D): the field size measured elsewhere on an H100 (docs/gpu.md), and a tiny one for CPU.
FIELD_SIZE = {"cuda": (4096, 64, 80, 256), "cpu": (8, 16, 20, 32)}
SMALL_UNET = ["policy.backbone=unet", "policy.down_dims=[64,128,256]"]
TINY_UNET = ["policy.backbone=unet", "policy.down_dims=[16,32]", "++policy.n_groups=4",
             "++policy.step_embed_dim=16"]
# name -> bench overrides; on CPU every network is tiny (the rows keep their names and roles)
LATENCY_ROWS = {
    "cuda": {"mlp": [], "small_unet": SMALL_UNET, "dp_unet": ["train=gpu"],
             "dp_unet_images": ["train=gpu", "task=pusht_image"]},
    "cpu": {"mlp": ["policy.mlp_width=32", "policy.mlp_depth=1"], "small_unet": TINY_UNET,
            "dp_unet": TINY_UNET, "dp_unet_images": [*TINY_UNET, "task=pusht_image"]},
}


def timed(function, repeats: int, sync) -> float:
    """Median milliseconds of ``function()`` after one warm-up call."""
    function()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[len(times) // 2]


def copy_bandwidth(device: str, sync) -> float:
    """Bytes per second of one device-to-device copy (read + write counted), 1 GiB on CUDA."""
    import torch

    numel = (2**28 if device == "cuda" else 2**22)
    source, target = torch.empty(numel, device=device), torch.empty(numel, device=device)
    ms = timed(lambda: target.copy_(source), 10, sync)
    return 2 * numel * 4 / (ms / 1e3)


def run_tests(device: str) -> dict:
    """pytest -m gpu over the whole suite: on CPU every test skips (the selection itself is checked)."""
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "tests"]
    child = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    summary = (child.stdout.strip().splitlines() or [""])[-1]
    print(f"tests: {summary}", flush=True)
    # exit 5 = nothing collected: impossible with tests marked gpu, so it counts as a failure
    return {"returncode": child.returncode, "summary": summary, "ok": child.returncode == 0}


def field_bench(device: str, sync, repeats: int) -> dict:
    """Eager vs fused field at FIELD_SIZE (3 temperatures, official normalisation), fp32 and bf16 inputs."""
    import torch

    from drifting_policy.drift import drift_field_result

    batch, num_gen, num_pos, dim = FIELD_SIZE[device]
    generator = torch.Generator().manual_seed(0)
    gen = torch.randn(batch, num_gen, dim, generator=generator).to(device)  # [B, G, D]
    pos = (torch.randn(batch, num_pos, dim, generator=generator) + 0.5).to(device)  # [B, P, D]
    bandwidth = copy_bandwidth(device, sync)
    out = {"B": batch, "G": num_gen, "P": num_pos, "D": dim, "copy_gb_per_s": bandwidth / 1e9}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        x, y = gen.to(dtype), pos.to(dtype)
        must_move = (x.numel() + y.numel()) * x.element_size() + x.numel() * 4  # read gen, pos; write V
        field = {b: (lambda b=b, x=x, y=y: drift_field_result(x, y, check_finite=False, backend=b))
                 for b in ("eager", "fused")}
        eager, fused = field["eager"]().field, field["fused"]().field
        row = {"floor_ms": must_move / bandwidth * 1e3,
               "max_rel_error": float((fused - eager).abs().max() / eager.abs().max())}
        for backend, call in field.items():
            row[f"{backend}_ms"] = timed(call, repeats, sync)
        row["fused_over_floor"] = row["fused_ms"] / row["floor_ms"]
        row["fused_speedup"] = row["eager_ms"] / row["fused_ms"]
        out[name] = row
        print(f"field {name}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
    return out


def compose(name: str, overrides: list[str]) -> dict:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    from drifting_policy.training.setup import register_train_defaults

    register_train_defaults()
    with initialize_config_module("configs", version_base=None):
        return OmegaConf.to_container(hydra_compose(name, overrides=overrides), resolve=True)


def latency(device: str, repeats: int) -> dict:
    """drifting-bench per row (batch 1, one chunk): eager and, on CUDA, CUDA-graphed milliseconds."""
    from drifting_policy.evaluation.bench import run_bench

    rows = {}
    for row, overrides in LATENCY_ROWS[device].items():
        settings = [f"device={device}", "default_threads=false", "warmup=2", f"repeats={repeats}",
                    "max_seconds=5"]
        print(f"latency {row}", flush=True)
        try:
            rows[row] = run_bench(compose("bench", [*overrides, *settings]))
        except Exception as error:  # one backbone's failure leaves the other rows
            rows[row] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
            print(f"latency {row} failed: {rows[row]['error']}", flush=True)
    if all("error" in value for value in rows.values()):
        raise RuntimeError(f"every latency row failed; first: {next(iter(rows.values()))['error']}")
    return rows


def random_batch(shape_meta: dict, obs_horizon: int, prediction_horizon: int, batch: int, device: str
                 ) -> dict:
    """A raw batch {'obs': {key: [B, To, ...]}, 'action': [B, T, A]} of random values."""
    import torch

    obs = {}
    for key, spec in shape_meta["obs"].items():
        shape = (batch, obs_horizon, *spec["shape"])
        obs[key] = (torch.randint(0, 256, shape, dtype=torch.uint8) if spec["type"] == "rgb"
                    else torch.rand(shape) * 512).to(device)
    action = torch.rand(batch, prediction_horizon, *shape_meta["action"]["shape"]) * 512
    return {"obs": obs, "action": action.to(device)}


def peak_memory_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def training_throughput(device: str, steps: int) -> dict:
    """Training steps of drifting and diffusion on DP's UNet (train=gpu), batch 256 (8 and a tiny UNet on
    CPU): forward + loss + backward + AdamW, bf16 autocast where the device supports it."""
    import torch

    from drifting_policy.common.precision import resolve_precision
    from drifting_policy.evaluation.bench import fitted_normalizer
    from drifting_policy.policy import build_policy
    from drifting_policy.training.checkpoint import shape_meta_from_json

    batch_size = 256 if device == "cuda" else 8
    bf16 = resolve_precision("auto", torch.device(device)) == "bf16"
    out = {"batch_size": batch_size, "bf16": bf16}
    for name in ("drifting", "diffusion"):
        cfg = compose("bench", [f"policy={name}", *(["train=gpu"] if device == "cuda" else TINY_UNET)])
        shape_meta = shape_meta_from_json(cfg["task"]["shape_meta"])
        torch.manual_seed(0)
        policy = build_policy(name, {k: v for k, v in cfg["policy"].items() if k != "name"}, shape_meta)
        policy.set_normalizer(fitted_normalizer(shape_meta))
        policy = policy.to(device).train()
        batch = random_batch(shape_meta, policy.config.obs_horizon, policy.config.prediction_horizon,
                             batch_size, device)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()

        def step(policy=policy, batch=batch, optimizer=optimizer):
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                loss, _ = policy.compute_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        ms = timed(step, steps, sync_for(device))
        out[name] = {"step_ms": ms, "steps_per_s": 1e3 / ms, "obs_per_s": batch_size * 1e3 / ms,
                     "peak_gib": peak_memory_gib(device),
                     "params": sum(p.numel() for p in policy.parameters())}
        print(f"training {name}: {out[name]}", flush=True)
    return out


def sync_for(device: str):
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def image_gen_parts(device: str, classes: int):
    """The ablation recipe's generator, frozen latent-MAE encoder (random weights: speed only), features and
    batch sizes; on CPU a DiT-T/4 on 16x16 latents, a width-8 encoder and 4 samples per class."""
    import dataclasses

    import torch

    from image_gen.models.dit import DiT
    from image_gen.models.mae import MAEConfig, ResNetGNEncoder
    from image_gen.objectives.features import FeatureConfig
    from image_gen.recipes.generator import RecipeConfig

    recipe = RecipeConfig.from_yaml(IMAGE_GEN_RECIPE)
    spec = recipe.feature_encoders[0]
    if device == "cuda":
        model_config, encoder_config = recipe.model, MAEConfig(spec.in_channels, spec.width, spec.blocks)
        sizes, features = (recipe.n_neg, recipe.n_pos, recipe.n_unc), FeatureConfig()
    else:
        model_config = dataclasses.replace(recipe.model, size="DiT-T/4", input_size=16, num_in_context=4)
        encoder_config = MAEConfig(spec.in_channels, 8, (1, 1))
        sizes, features = (4, 4, 2), FeatureConfig(max_locations=16)
    torch.manual_seed(0)
    model = DiT(model_config).to(device)
    encoder = ResNetGNEncoder(encoder_config).to(device).eval().requires_grad_(False)
    return recipe, model, encoder, features, sizes


def image_gen_throughput(device: str, steps: int, classes: int) -> dict:
    """Generated images per second of one drifting step (generator forward, features, field + loss,
    backward, clip, AdamW) at ``classes`` classes per step, bf16 autocast on CUDA as the trainer runs it."""
    import torch

    from image_gen.objectives.features import cfg_neg_weight, extract_features, feature_drift_loss

    recipe, model, encoder, features, (n_neg, n_pos, n_unc) = image_gen_parts(device, classes)
    cfg = model.config
    image = (cfg.in_channels, cfg.input_size, cfg.input_size)
    alpha = 1.0 + 3.0 * torch.rand(classes, device=device)  # [N_c] CFG scales
    labels = torch.arange(classes, device=device).repeat_interleave(n_neg)  # [N_c * N_neg]
    positives = torch.randn(classes * n_pos, *image, device=device)  # [N_c * N_pos, C, H, W]
    unconditional = torch.randn(n_unc, *image, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        noise = torch.randn(classes * n_neg, *image, device=device)  # [N_c * N_neg, C, H, W]
        style = model.sample_style(noise.shape[0], device=device)
        with autocast:
            generated = model(noise, labels, alpha.repeat_interleave(n_neg), style)
            gen_feats = extract_features(encoder, generated, features)
            with torch.no_grad():
                pos_feats = extract_features(encoder, positives, features)
                unc_feats = extract_features(encoder, unconditional, features)
        loss, _ = feature_drift_loss(gen_feats, pos_feats, unc_feats, classes,
                                     cfg_neg_weight(alpha, n_neg, n_unc), temperatures=recipe.temperatures)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()

    ms = timed(step, steps, sync_for(device))
    out = {"recipe": recipe.name, "model": cfg.size, "classes_per_step": classes, "n_neg": n_neg,
           "n_pos": n_pos, "n_unc": n_unc, "step_ms": ms, "img_per_s": classes * n_neg * 1e3 / ms,
           "peak_gib": peak_memory_gib(device), "params": sum(p.numel() for p in model.parameters())}
    print(f"image_gen: {out}", flush=True)
    return out


def markdown(result: dict) -> str:
    """The JSON's headline numbers as Markdown tables (a part that failed shows its error)."""
    lines = [f"# gpu-check on {result['device_name']} ({result['device']})", ""]
    if "error" in result.get("field", {}) or "float32" in result.get("field", {}):
        field = result["field"]
        size = " ".join(f"{key}={field.get(key)}" for key in "BGPD")
        lines += [f"## Field: {size}, 3 temperatures; copy bandwidth "
                  f"{field.get('copy_gb_per_s', float('nan')):.0f} GB/s", "",
                  "| inputs | floor ms | eager ms | fused ms | fused / floor | speedup | max rel. err |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {dtype} | {row['floor_ms']:.3f} | {row['eager_ms']:.3f} | {row['fused_ms']:.3f} | "
                  f"{row['fused_over_floor']:.1f} | {row['fused_speedup']:.1f} | {row['max_rel_error']:.1e} |"
                  for dtype, row in field.items() if isinstance(row, dict)]
    methods = ("drifting", "ddim10", "ddpm100")
    lines += ["", "## Latency per chunk, batch 1 (ms; graph = replayed from a CUDA graph)", "",
              "| backbone | " + " | ".join(f"{m} | {m} graph" for m in methods) + " |",
              "|---|" + "---|---|" * len(methods)]
    for row, values in result.get("latency", {}).items():
        if not isinstance(values, dict) or "error" in values:
            continue  # listed with the errors below
        cells = [f"{values.get(f'{m}_ms', float('nan')):.3f} | " + (
            f"{values[f'{m}_graph_ms']:.3f}" if f"{m}_graph_ms" in values else
            "failed" if f"{m}_graph_error" in values else "-") for m in methods]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    training = result.get("training", {})
    lines += ["", f"## Policy training, batch {training.get('batch_size')}, bf16 {training.get('bf16')}", "",
              "| policy | steps/s | obs/s | peak GiB | params |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {row['steps_per_s']:.2f} | {row['obs_per_s']:.0f} | {row['peak_gib'] or '-'} | "
              f"{row['params']:,} |" for name, row in training.items() if isinstance(row, dict)]
    image = result.get("image_gen", {})
    lines += ["", "## image_gen step", "", "| recipe | model | classes x N_neg | img/s | peak GiB |",
              "|---|---|---|---|---|"]
    if "img_per_s" in image:
        lines.append(f"| {image['recipe']} | {image['model']} | {image['classes_per_step']} x "
                     f"{image['n_neg']} | {image['img_per_s']:.1f} | {image['peak_gib'] or '-'} |")
    lines += ["", f"tests (-m gpu): {result.get('tests', {}).get('summary', '-')}"]
    failures = {part: value for part, value in result.items() if isinstance(value, dict)}
    failures.update({f"latency {row}": value for row, value in result.get("latency", {}).items()})
    lines += [f"- {part} failed: {value['error']}" for part, value in failures.items()
              if isinstance(value, dict) and "error" in value]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--out", default=None, help="output folder (default runs/gpu_check_<device>)")
    parser.add_argument("--parts", nargs="+", default=["tests", "field", "latency", "training", "image_gen"])
    parser.add_argument("--imagegen-classes", type=int, default=8,
                        help="classes per image_gen step on CUDA (the recipe's 64 need several GPUs)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.device == "cpu":  # the fused field runs in Triton's interpreter, chosen before triton is imported
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu-check: no CUDA device here; `make gpu-check DEVICE=cpu` runs the CPU smoke")
    torch.set_num_threads(1 if args.device == "cpu" else torch.get_num_threads())
    out = Path(args.out or ROOT / "runs" / f"gpu_check_{args.device}")
    out.mkdir(parents=True, exist_ok=True)
    cuda = args.device == "cuda"
    sync = sync_for(args.device)
    parts = {"tests": lambda: run_tests(args.device),
             "field": lambda: field_bench(args.device, sync, 20 if cuda else 2),
             "latency": lambda: latency(args.device, 30 if cuda else 2),
             "training": lambda: training_throughput(args.device, 10 if cuda else 2),
             "image_gen": lambda: image_gen_throughput(args.device, 5 if cuda else 1,
                                                       args.imagegen_classes if cuda else 2)}
    result = {"device": args.device, "torch": torch.__version__,
              "device_name": torch.cuda.get_device_name() if cuda else "cpu (sizes tiny, times meaningless)"}
    start = time.perf_counter()
    for name in args.parts:
        part_start = time.perf_counter()
        try:
            result[name] = parts[name]()
        except Exception as error:  # record and go on: the other parts' numbers are still worth the GPU time
            result[name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
            print(f"{name} failed: {result[name]['error']}", flush=True)
        result[f"{name}_seconds"] = time.perf_counter() - part_start
        write(result, out)
    result["total_seconds"] = time.perf_counter() - start
    write(result, out)
    failed = [name for name in args.parts if "error" in result[name] or result[name].get("ok") is False]
    print(out / "gpu_check.json")
    if failed:
        raise SystemExit(f"gpu-check: {failed} failed; see {out / 'gpu_check.md'}")


def write(result: dict, out: Path) -> None:
    """Both files, each replaced whole (written after every part: a run killed mid-write keeps the last)."""
    from drifting_policy.common.io import atomic_write

    for name, text in (("gpu_check.json", json.dumps(result, indent=1, default=str) + "\n"),
                       ("gpu_check.md", markdown(result))):
        atomic_write(out / name, lambda tmp, text=text: Path(tmp).write_text(text))


if __name__ == "__main__":
    main()
