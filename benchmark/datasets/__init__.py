"""Datasets: the sample records, the CoOp split-file reader, the few-shot sampler and the
readers of the standard datasets. Nothing here imports torch."""
