"""A small vision transformer trained with PyTorch Lightning, watched by gradsight's callback,
on the Fashion-MNIST images bundled with gradsight (no download).

    pip install 'gradsight[lightning]'
    python examples/lightning_vit.py --run-dir runs/lit-vit --epochs 2

``--nan-at-step N`` plants a NaN in the second encoder layer's attention from optimizer step N
on, to show the callback naming where it was born and stopping the trainer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from gradsight.data import DEFAULT_DATASET, load_dataset
from gradsight.integrations.lightning import GradsightCallback


class Poisonable(nn.TransformerEncoderLayer):
    """An encoder layer whose attention output turns NaN once ``poison`` is set."""

    poison = False

    def _sa_block(self, x: Tensor, *args: object, **kwargs: object) -> Tensor:
        out = super()._sa_block(x, *args, **kwargs)  # type: ignore[arg-type]
        return out.sqrt() if self.poison else out  # sqrt of negatives: NaN


class TinyViT(pl.LightningModule):
    """(B, 1, 28, 28) -> 7x7 patches of 4x4 -> 2 encoder layers -> 10 classes."""

    def __init__(self, d: int = 32, lr: float = 3e-3, nan_at_step: int | None = None) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, d, kernel_size=4, stride=4)
        self.pos = nn.Parameter(torch.zeros(1, 49, d))
        self.encoder = nn.ModuleList(
            Poisonable(d, 4, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
            for _ in range(2)
        )
        self.head = nn.Linear(d, 10)
        self.lr = lr
        self.nan_at_step = nan_at_step

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch(images).flatten(2).transpose(1, 2) + self.pos  # (B, 49, d)
        for layer in self.encoder:
            x = layer(x)
        return self.head(x.mean(1))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        if self.nan_at_step is not None:
            self.encoder[1].poison = self.global_step >= self.nan_at_step
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/lit-vit")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=2048, help="training images used")
    parser.add_argument("--nan-at-step", type=int, default=None)
    args = parser.parse_args()

    pl.seed_everything(0, verbose=False)
    data = load_dataset(DEFAULT_DATASET).train
    train = TensorDataset(data.images[: args.images], data.labels[: args.images])
    callback = GradsightCallback(
        run_dir=args.run_dir or None,
        on_finding=lambda f: print(f"gradsight, step {f.step}: {f.message}"),
        log_every=8,
    )
    trainer = pl.Trainer(
        max_epochs=args.epochs, accelerator="auto", devices=1, callbacks=[callback],
        gradient_clip_val=1.0, logger=False, enable_checkpointing=False,
        enable_model_summary=False, enable_progress_bar=False,
    )  # fmt: skip
    trainer.fit(TinyViT(nan_at_step=args.nan_at_step), DataLoader(train, batch_size=64))
    if args.run_dir:
        summary = json.loads((Path(args.run_dir) / "summary.json").read_text())
        print(f"{summary['status']} after {summary['steps']} steps; run folder: {args.run_dir}")


if __name__ == "__main__":
    main()
