"""A small GRU language model in your own loop, watched by gradsight: dict outputs and
sequence targets, on generated tokens (no download).

    python examples/language_model.py --run-dir runs/gru-lm --steps 200
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import gradsight


class GRULanguageModel(nn.Module):
    """tokens (B, T) -> {"logits": (B, T, vocab), "hidden": (B, T, d)}."""

    def __init__(self, vocab: int, d: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden, _ = self.gru(self.embed(tokens))  # (B, T, d)
        return {"logits": self.head(hidden), "hidden": hidden}


def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model(batch["tokens"])["logits"]  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), batch["next"].flatten())


def batches(vocab: int, batch_size: int, length: int, generator: torch.Generator):  # type: ignore[no-untyped-def]
    """Sequences that count up modulo ``vocab`` from a random start: learnable."""
    while True:
        start = torch.randint(0, vocab, (batch_size, 1), generator=generator)
        seq = (start + torch.arange(length + 1)) % vocab  # (B, T + 1)
        yield {"tokens": seq[:, :-1], "next": seq[:, 1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/gru-lm")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    torch.manual_seed(0)
    vocab = 17
    model = GRULanguageModel(vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = batches(vocab, batch_size=16, length=12, generator=torch.Generator().manual_seed(0))

    with gradsight.watch(model, loss_fn, run_dir=args.run_dir, on_finding=print) as run:
        for step, batch in zip(range(args.steps), data, strict=False):
            optimizer.zero_grad()
            loss = loss_fn(model, batch)
            loss.backward()
            if run.check(step, batch):
                break
            optimizer.step()
            run.log(step, loss=loss.item())
    print(f"final loss {loss.item():.3f}; run folder: {run.run_dir}")


if __name__ == "__main__":
    main()
