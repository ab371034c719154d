"""One epoch over a streamed split, data only (twice) and with a ConvNet-w32 SGD step per batch.

    python benchmarks/streaming.py          # once: writes the 20,000-JPEG folder and its cache
    python benchmarks/streamed_transfer.py LABEL

Run it at two commits to compare how streamed batches reach the training loop (the measurement
behind moving normalisation from the DataLoader worker to the main process).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

WORK = Path(tempfile.gettempdir()) / "dd-bench-streaming"
os.environ.setdefault("DD_BENCH_CACHE", str(WORK / "cache-speed"))


def main() -> None:
    from dd_bench import api
    from dd_bench.streaming import batches
    from dd_bench.testing import make_registry

    label = sys.argv[1] if len(sys.argv) > 1 else "run"
    registry = make_registry()
    data = api.load_data(registry, "image_folder", WORK / "jpeg-20000", resolution=64)
    n = len(data.train_y)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    model = registry.model("convnet_w32").build(data.shape)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    labels = torch.zeros(256, dtype=torch.long)

    def step(xb: torch.Tensor) -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), labels[: len(xb)]).backward()
        opt.step()

    for kind, fn, reps in (("data only", lambda xb: None, 2), ("data + SGD step", step, 1)):
        for rep in range(reps):
            started = time.perf_counter()
            for xb in batches(data.train_x, order, 256):
                fn(xb)
            seconds = time.perf_counter() - started
            print(f"{label} | {kind} | epoch {rep} | {seconds:.2f} s | {n / seconds:.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
