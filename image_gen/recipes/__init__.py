"""ImageNet recipes of the paper (Table 8) and their dry runs: sizes, FLOPs and GPU-hours without training.
base (recipe files, constants), generator (DiT generator recipes), mae (feature-encoder pre-training)."""
