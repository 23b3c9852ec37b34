"""The shared prompt-learning core."""
