"""Synthetic data generators and bundled sample images (made offline, seeded)."""
