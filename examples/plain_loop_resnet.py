"""Your own training loop on a torchvision ResNet-18, watched by gradsight.

Trains for a few steps on the Fashion-MNIST subset bundled with gradsight (offline), then
leaves a run folder with the first step's autograd graph and trace, the metrics, any
findings, the plots and report.html:

    python examples/plain_loop_resnet.py --run-dir runs/resnet --steps 30
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
import torchvision

import gradsight
from gradsight.data import load_dataset


def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    images, labels = batch  # (B, 1, 28, 28), (B,)
    logits = model(images.expand(-1, 3, -1, -1))  # ResNet wants 3 channels: (B, 10)
    return F.cross_entropy(logits, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/resnet18-own-loop")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    torch.manual_seed(0)
    data = load_dataset("fashion-mnist-mini")
    model = torchvision.models.resnet18(num_classes=data.info.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = data.train.batches(args.batch_size, shuffle=True)

    with gradsight.watch(model, loss_fn, run_dir=args.run_dir, on_finding=print) as run:
        for step, batch in zip(range(args.steps), batches, strict=False):
            optimizer.zero_grad()
            loss = loss_fn(model, batch)
            loss.backward()
            if run.check(step, batch):  # True: a NaN/Inf gradient; the finding says where
                break
            optimizer.step()
            run.log(step, loss=loss.item())
    print(f"run folder: {run.run_dir}")


if __name__ == "__main__":
    main()
