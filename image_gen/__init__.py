"""One-step class-conditional image generation by feature-space drifting (Fashion-MNIST, pixel and latent).

Library: models/ (networks and their weight files), data/ (Fashion-MNIST, latent caches, sample queue,
ImageNet), objectives/ (drifting, flow, mae, vae, evaluator: what a training run optimises), training/ (the
one trainer, its config, resume state and hydra plumbing), evaluation/ (metrics, scoring, .npz samples),
recipes/ (ImageNet dry runs), sampling (generators loaded from their files), distributed, runtime (devices),
run_folder (the files of a run and the run-folder rule), weight_files (reading weight files: a damaged or
foreign file is one line naming it).
Entry points (console scripts; no module imports them): train (image-gen-train and its -flow, -mae, -vae and
-evaluator aliases), evaluate, sample, dry_run, cache_latents, bench (image-gen-bench). Each reports a user
error as one line, `error: ...`, with exit status 2 (drifting_policy.common.entry.report_user_errors).
"""
