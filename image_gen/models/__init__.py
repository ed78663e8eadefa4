"""Networks: the one-step generator (dit), its flow-matching twin (flow_dit), the drift loss's feature
encoders (mae, convnext), the latent space (vae) and the evaluation classifier (classifier); each module also
reads and writes its own weight files."""
