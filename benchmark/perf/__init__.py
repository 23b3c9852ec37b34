"""Performance tooling: the ``bench`` command (our training step against the reference
design's, and the device-hour estimate), the default run's wall clock, and the ``doctor``
command, which checks and measures the whole training path on one device (a CUDA GPU, or the
CPU with ``--quick``)."""
