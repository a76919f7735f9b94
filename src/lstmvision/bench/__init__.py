"""Benchmarks of lstmvision components (``python -m lstmvision.bench.rnn``)."""
