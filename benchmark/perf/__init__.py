"""Performance tooling: the ``bench`` command, the reference design's training step it times
ours against, the device-hour estimate, and the default run's wall clock."""
