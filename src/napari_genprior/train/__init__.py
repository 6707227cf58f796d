"""Training entry points (GAN priors, …). Pure torch + numpy; checkpoints with resume."""
