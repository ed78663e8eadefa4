"""``image-gen-eval``: sample a trained generator and score it with the project's evaluation network.

    image-gen-eval --checkpoint runs/imagegen_smoke/model.safetensors \
        --evaluator runs/evaluator/evaluator.safetensors
    image-gen-eval --checkpoint runs/flow_latent/model.safetensors --nfe 10 --alpha 1 ...   # flow baseline
    image-gen-eval --evaluator ...      # no checkpoint: the calibration table alone

Reference set: the test split (never used in training). Metrics in the evaluator's feature space: Frechet
distance ``fd``, ``kid``, ``precision``, ``recall``, and ``class_accuracy`` of conditional samples; plus the
median pixel distance of samples to their nearest training image (memorisation check). Calibration rows: the
train split vs the test split (floor), per-class mean image, per-class Gaussian, copies of training images.
Drifting checkpoints sample in one network call; flow checkpoints (``image-gen-train-flow``) integrate
``--nfe`` Euler steps (``--alpha`` is then the CFG guidance scale w). The result JSON also records
``model_kind``, ``nfe`` and the generator's wall time per image (VAE decoding excluded) and per NFE.
The last printed line is the result JSON (also written to --out when given).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from drifting_policy.common.entry import report_user_errors, set_threads
from image_gen.data.fmnist import DEFAULT_ROOT, NUM_CLASSES
from image_gen.evaluation.scoring import EVAL_SEED, evaluate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", help="model.safetensors of an image-gen-train run (omit: calibration only)"
    )
    parser.add_argument("--evaluator", default="runs/evaluator/evaluator.safetensors")
    parser.add_argument("--n-samples", type=int, default=5000)
    parser.add_argument(
        "--alpha", type=float, default=1.5, help="CFG scale (1 = no guidance); flow: guidance scale w"
    )
    parser.add_argument(
        "--nfe", type=int, default=None,
        help="Euler steps of a flow checkpoint (default 1); drifting checkpoints are 1-NFE and refuse > 1",
    )
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--calibrate", action="store_true", help="also score the trivial baselines")
    parser.add_argument("--inception-weights", default=None, help="local Inception-v3 file for standard FID")
    parser.add_argument("--data-root", default=DEFAULT_ROOT)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    return parser


@report_user_errors  # a bad input (missing, damaged or foreign file, bad option) is one line, exit 2
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.n_samples < NUM_CLASSES:
        raise ValueError(f"--n-samples={args.n_samples}; need at least {NUM_CLASSES} (one per class)")
    set_threads(args.num_threads)  # process-wide: the entry point's job, not evaluate()'s
    result = evaluate(args)
    line = json.dumps(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
