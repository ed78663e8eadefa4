"""Training entry points: one hydra command per objective, all running the one image trainer.

    image-gen-train --config-name smoke                    # drifting generator (configs/image_gen/smoke.yaml)
    image-gen-train --config-name fmnist_pixel max_steps=4000
    image-gen-train-flow --config-name flow_fmnist_latent  # same as image-gen-train --config-name flow_...
    image-gen-train-mae --config-name mae_smoke            # MAE feature encoder
    image-gen-train-vae run_name=vae max_steps=2000        # latent-space autoencoder
    image-gen-train-evaluator run_name=evaluator epochs=2  # evaluation classifier
    torchrun --nproc_per_node 2 -m image_gen.train --config-name mae_smoke    # DDP (gloo on CPU)

The YAML picks the objective (``defaults: [objective: <name>]``); the scripts differ only in the config they
default to. ``objective=<name>`` on the command line switches a YAML that sets no objective fields.
"""

from __future__ import annotations

from drifting_policy.common.entry import report_user_errors, set_threads
from image_gen.training.hydra_config import CONFIG_DIR, config_from_dict, register_objectives
from image_gen.training.trainer import train


def run(default_config: str) -> None:
    """A console script's body: hydra config (configs/image_gen/<default_config>.yaml unless --config-name)
    -> the objective's config dataclass -> the process's torch threads -> train."""
    import hydra
    from omegaconf import OmegaConf

    register_objectives()

    @hydra.main(config_path=str(CONFIG_DIR), config_name=default_config, version_base=None)
    @report_user_errors  # inside hydra.main: a user error is one line and exit status 2, no traceback
    def _main(cfg) -> None:
        config = config_from_dict(OmegaConf.to_container(cfg, resolve=True))
        set_threads(config.num_threads)  # process-wide: set here, never in the library
        train(config)

    _main()


def main() -> None:
    """``image-gen-train``: the drifting generator by default (configs/image_gen/smoke.yaml)."""
    run("smoke")


def main_flow() -> None:
    """``image-gen-train-flow``: the rectified-flow baseline (configs/image_gen/flow_fmnist_latent.yaml)."""
    run("flow_fmnist_latent")


def main_mae() -> None:
    """``image-gen-train-mae``: the drift loss's feature encoder (configs/image_gen/mae_smoke.yaml)."""
    run("mae_smoke")


def main_vae() -> None:
    """``image-gen-train-vae``: the latent-space autoencoder (configs/image_gen/vae.yaml)."""
    run("vae")


def main_evaluator() -> None:
    """``image-gen-train-evaluator``: the evaluation classifier (configs/image_gen/evaluator.yaml)."""
    run("evaluator")


if __name__ == "__main__":
    main()
