"""Forward + backward of SimpleCNN: the NumPy reference by hand vs PyTorch on CPU, in one process.

Both compute the mean cross-entropy loss and all four parameter gradients of the same
SimpleCNN (same weights) on the same 64-image batch, for 1x28x28 (Fashion-MNIST) and 3x32x32
(the article's) inputs. The NumPy side also computes the input's gradient, which torch skips
because the images do not require grad. Calls are interleaved, in a new random order each
round, and medians compared; a second copy of the torch call measures the noise floor (its
ratio should be ~1.00). Goal: NumPy / torch time <= 5.

    python benchmarks/bench_numpy_ref.py [--repeats 30] [--batch-size 64] [--dtype float32]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from gradsight.models import SimpleCNN
from gradsight.numpy_ref import max_rel_diff, simple_cnn_forward_backward

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def make_calls(
    channels: int, size: int, batch: int, dtype: torch.dtype
) -> dict[str, Callable[[], object]]:
    """Return the two calls to time, after checking they compute the same gradients."""
    torch.manual_seed(0)
    model = SimpleCNN(channels, 10, size).to(dtype)
    x, y = torch.randn(batch, channels, size, size, dtype=dtype), torch.randint(0, 10, (batch,))
    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    x_np, y_np = x.numpy(), y.numpy()

    def torch_call() -> object:
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    def numpy_call() -> object:
        return simple_cnn_forward_backward(params, x_np, y_np)

    torch_call()
    _, grads = numpy_call()  # type: ignore[misc]
    worst = max(max_rel_diff(grads[k], p.grad.numpy()) for k, p in model.named_parameters())
    print(f"  {channels}x{size}x{size}: max relative difference of the gradients {worst:.1e}")
    return {"torch": torch_call, "numpy_ref": numpy_call, "torch (again)": torch_call}


def bench(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Return the median seconds of each call over ``repeats`` shuffled, interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    order, shuffler = list(calls), random.Random(0)
    for fn in calls.values():  # warm-up
        fn()
    for _ in range(repeats):
        shuffler.shuffle(order)
        for name in order:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    args = parser.parse_args()
    print(
        f"SimpleCNN forward+backward, batch {args.batch_size}, {args.dtype}, CPU, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"median of {args.repeats} interleaved calls"
    )
    results = {}
    for channels, size in ((1, 28), (3, 32)):
        calls = make_calls(channels, size, args.batch_size, DTYPES[args.dtype])
        results[f"{channels}x{size}x{size}"] = bench(calls, args.repeats)
    print(f"{'input':<10}{'torch ms':>10}{'numpy ms':>10}{'numpy/torch':>13}{'noise floor':>13}")
    worst = 0.0
    for name, med in results.items():
        base = statistics.mean([med["torch"], med["torch (again)"]])
        ratio = med["numpy_ref"] / base
        worst = max(worst, ratio)
        print(
            f"{name:<10}{base * 1e3:>10.2f}{med['numpy_ref'] * 1e3:>10.2f}{ratio:>13.2f}"
            f"{med['torch (again)'] / med['torch']:>13.2f}"
        )
    print(f"goal numpy/torch <= 5: {'met' if worst <= 5 else 'NOT met'} (worst {worst:.2f})")


if __name__ == "__main__":
    main()
