"""Training data: Fashion-MNIST (fmnist), its VAE-latent cache (latents), the MoCo-style sample queue of the
drifting objective (queue), and ImageNet with its SD-VAE latent cache for the paper's recipes (imagenet)."""
