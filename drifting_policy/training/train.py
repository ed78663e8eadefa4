"""`drifting-train`: the one training loop for every policy, configured by hydra.

    drifting-train task=pusht_state policy=drifting
    drifting-train task=pusht_state policy=diffusion train.max_steps=null train.max_minutes=10
    drifting-train task=pusht_state policy=diffusion train=gpu

The work is `drifting_policy.training.setup.run_training`; the last printed line is a JSON object with the
final metrics.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig, OmegaConf

from drifting_policy.common.entry import check_overrides, report_user_errors
from drifting_policy.training.setup import register_train_defaults, run_training


@hydra.main(config_path="../../configs", config_name="train", version_base=None)
@report_user_errors
def _train(cfg: DictConfig) -> None:
    metrics = run_training(OmegaConf.to_container(cfg, resolve=True))
    print(json.dumps(metrics))


def main() -> None:
    register_train_defaults()
    report_user_errors(check_overrides)("configs", "train")
    _train()


if __name__ == "__main__":
    main()
