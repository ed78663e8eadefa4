"""``image-gen-train-vae``: train the small KL autoencoder (diffusers AutoencoderKL) for latent-space runs.

    image-gen-train-vae --out runs/vae/vae.safetensors --steps 2000

32x32x1 images -> 8x8x4 latents. Loss: MSE reconstruction + kl_weight * KL. After training the latent
shift/scale are fitted on training images, and the test reconstruction MSE is stored in the file's metadata.
``image-gen-train space=latent vae_path=...`` caches the training latents next to the file once.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from tqdm import tqdm

from image_gen.data import DEFAULT_ROOT, load_pixels
from image_gen.models.vae import LatentVAE, VAEConfig, build_autoencoder, save_vae
from image_gen.utils import pick_device, warmup_cosine


def train_vae(
    out: str,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    kl_weight: float = 1e-4,
    limit_per_class: int | None = None,
    data_root: str = DEFAULT_ROOT,
    seed: int = 0,
    device_name: str = "auto",
    config: VAEConfig | None = None,
) -> LatentVAE:
    device = pick_device(device_name)
    config = config or VAEConfig()
    images, _ = load_pixels("train", data_root, limit_per_class)
    test_images, _ = load_pixels("test", data_root, 100)
    # Initial weights draw from the global CPU RNG: seed it from ``seed`` on a fork, so the caller's RNG is
    # left as it was (no global state in library code) and the same seed gives the same weights.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # the CPU generator alone: networks start on CPU
        vae = LatentVAE(build_autoencoder(config), config).to(device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    start = time.time()
    for step in tqdm(range(steps), desc="vae", mininterval=5.0):
        for group in optimizer.param_groups:
            group["lr"] = lr * warmup_cosine(step, min(100, steps // 10), steps)
        x = images[torch.randint(images.shape[0], (batch_size,), generator=generator)].to(device)
        dist = vae.encode_dist(x)
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator).to(device)
        recon = vae.autoencoder.decode(z).sample
        loss = (recon - x).square().mean() + kl_weight * dist.kl().mean() / x[0].numel()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
    vae.eval()
    with torch.no_grad():
        vae.fit_normalisation(images[:2000].to(device))
        test_mse = float(
            (vae.decode(vae.encode_mean(test_images.to(device))) - test_images.to(device)).square().mean()
        )
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_vae(
        vae.cpu(), out_path, {"test_mse": test_mse, "steps": steps, "train_seconds": time.time() - start}
    )
    print(f"VAE saved to {out_path}: test reconstruction MSE {test_mse:.4f} (pixels in [-1, 1])")
    return vae


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/vae/vae.safetensors")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--kl-weight", type=float, default=1e-4)
    parser.add_argument("--limit-per-class", type=int, default=None)
    parser.add_argument("--data-root", default=DEFAULT_ROOT)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.num_threads)  # process-wide: the entry point's job, not train_vae()'s
    train_vae(
        args.out,
        args.steps,
        args.batch_size,
        args.lr,
        args.kl_weight,
        args.limit_per_class,
        args.data_root,
        device_name=args.device,
    )


if __name__ == "__main__":
    main()
