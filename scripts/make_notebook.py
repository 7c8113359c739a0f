"""Build ``notebooks/backprop_tour.ipynb`` from the cells below, outputs stripped.

The notebook is generated so that it can be reviewed as Python source: edit the cells here,
then run ``python scripts/make_notebook.py``. ``--check`` only compares, and exits with 1 if
the committed notebook differs from what this script writes (``tests/test_notebook.py``
checks the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "backprop_tour.ipynb"

#: (kind, cell id, source); ``kind`` is "md" or "code". The ids are fixed so that the file
#: only changes where a cell does; the test finds the graph and curves cells by them.
CELLS: list[tuple[str, str, str]] = [
    (
        "md",
        "title",
        """\
# A tour of backpropagation with gradsight

What does `loss.backward()` actually do in a small CNN? This notebook walks through it cell
by cell, with [gradsight](../README.md) making each step visible:

1. autograd on a scalar,
2. the article's `SimpleCNN` and the shapes of its gradients,
3. why `zero_grad()` matters,
4. one SGD step by hand, against `torch.optim.SGD`,
5. the autograd graph, drawn inline,
6. the backward pass traced node by node,
7. every gradient computed again by hand in NumPy,
8. a short training run with its curves, watched by the gradient monitor,
9. a NaN planted in a submodule, and the monitor naming where it was born.

Every cell **asserts** what it shows, so running the notebook top to bottom is also a test
(`tests/test_notebook.py` does exactly that). It runs on the CPU in well under a minute and
writes no files. Open it with `pip install "gradsight[notebook]"` and
`jupyter lab notebooks/backprop_tour.ipynb`; the graph is drawn when Graphviz's `dot` is
installed (`apt-get install graphviz`), and shown as text otherwise.""",
    ),
    (
        "code",
        "setup",
        """\
import collections

import torch
import torch.nn.functional as F
from torch import nn

import gradsight
from gradsight.autograd.attribution import ModuleAttribution
from gradsight.train import seed_everything

seed_everything(42)  # Python, NumPy and torch: every number below is reproducible
torch.set_printoptions(precision=4)
print("gradsight", gradsight.__version__, "| torch", torch.__version__)""",
    ),
    (
        "md",
        "scalar-md",
        """\
## 1. Autograd on a scalar

Take $y = x^2 + 3x + 1$ at $x = 2$. The forward pass gives $y = 4 + 6 + 1 = 11$; the
derivative is $\\frac{dy}{dx} = 2x + 3$, which is $7$ at $x = 2$. The **7** is the gradient,
not the value of $y$. `y.backward()` computes it and stores it in `x.grad`.""",
    ),
    (
        "code",
        "scalar",
        """\
x = torch.tensor(2.0, requires_grad=True)
y = x**2 + 3 * x + 1
y.backward()  # dy/dx, into x.grad

print(f"y = {y.item()}   dy/dx = x.grad = {x.grad.item()}   2x + 3 = {2 * x.item() + 3}")
assert y.item() == 11.0  # the value: 4 + 6 + 1
assert x.grad.item() == 7.0 == 2 * x.item() + 3  # the gradient: 2x + 3""",
    ),
    (
        "md",
        "cnn-md",
        """\
## 2. The article's CNN and its gradients

`gradsight.SimpleCNN` is the article's network: `Conv2d(3, 16, 3, padding=1) -> ReLU ->
MaxPool2d(2) -> flatten -> Linear(4096, 10)`, sized from the data. On the article's random
batch of four 3x32x32 images, one `backward()` fills every parameter's `.grad`, each with
the shape of its parameter: `conv1.weight.grad` is `[16, 3, 3, 3]` and `fc.weight.grad` is
`[10, 4096]` (16 channels x 16 x 16 after pooling).""",
    ),
    (
        "code",
        "cnn",
        """\
model = gradsight.SimpleCNN(in_channels=3, num_classes=10, image_size=32)
images = torch.randn(4, 3, 32, 32)
labels = torch.tensor([1, 0, 4, 9])
criterion = nn.CrossEntropyLoss()
print(model)

logits = model(images)
loss = criterion(logits, labels)
loss.backward()

grad_shapes = {name: list(p.grad.shape) for name, p in model.named_parameters()}
print(f"loss = {loss.item():.4f}")
for name, shape in grad_shapes.items():
    print(f"{name + '.grad':18} {shape}")

assert logits.shape == (4, 10)
assert grad_shapes == {
    "conv1.weight": [16, 3, 3, 3],
    "conv1.bias": [16],
    "fc.weight": [10, 4096],
    "fc.bias": [10],
}
assert all(p.grad.shape == p.shape for p in model.parameters())""",
    ),
    (
        "md",
        "zero-grad-md",
        """\
## 3. Why `zero_grad()` matters

`backward()` does not overwrite `.grad`, it **adds** to it. Call it twice on the same batch
without clearing and every gradient is exactly twice as large, as if the batch counted
double. `model.zero_grad()` (or `optimizer.zero_grad()`) clears them (by default it sets
them to `None`), and the next `backward()` gives the first gradient again.""",
    ),
    (
        "code",
        "zero-grad",
        """\
first = {name: p.grad.clone() for name, p in model.named_parameters()}

criterion(model(images), labels).backward()  # a second backward, no zero_grad in between
for name, p in model.named_parameters():
    assert torch.equal(p.grad, 2 * first[name]), name  # accumulated: twice the gradient
twice, once = model.fc.weight.grad.norm().item(), first["fc.weight"].norm().item()
print(f"without zero_grad: ||fc.weight.grad|| = {twice:.4f} = 2 x {once:.4f}")

model.zero_grad()
assert all(p.grad is None for p in model.parameters())
criterion(model(images), labels).backward()
for name, p in model.named_parameters():
    assert torch.equal(p.grad, first[name]), name  # cleared: the first gradient again
print(f"after zero_grad:   ||fc.weight.grad|| = {model.fc.weight.grad.norm().item():.4f}")""",
    ),
    (
        "md",
        "sgd-md",
        """\
## 4. One SGD step, by hand and by `torch.optim.SGD`

Plain SGD moves every weight against its gradient: $w \\leftarrow w - \\text{lr} \\cdot
\\nabla_w L$, with the article's `lr = 0.01`. Done by hand, it gives the same weights as
`torch.optim.SGD(lr=0.01).step()`, up to float32 rounding (the optimizer computes
$w + (-\\text{lr}) \\cdot \\nabla_w L$ in one kernel, which may round the last bit differently),
and the loss on this batch goes down.""",
    ),
    (
        "code",
        "sgd",
        """\
lr = 0.01
with torch.no_grad():
    loss_before = criterion(model(images), labels).item()
    by_hand = {name: p - lr * p.grad for name, p in model.named_parameters()}

optimizer = torch.optim.SGD(model.parameters(), lr=lr)
optimizer.step()

with torch.no_grad():
    loss_after = criterion(model(images), labels).item()
for name, p in model.named_parameters():
    diff = (p.detach() - by_hand[name]).abs().max().item()
    print(f"{name:13} max |by hand - SGD| = {diff:.1e}")
    assert torch.allclose(p.detach(), by_hand[name], rtol=1e-6, atol=1e-7), name
print(f"loss on this batch: {loss_before:.4f} -> {loss_after:.4f}")
assert loss_after < loss_before""",
    ),
    (
        "md",
        "graph-md",
        """\
## 5. The autograd graph, inline

The forward pass records a graph of backward functions (`grad_fn`); `backward()` walks it
from the loss to the parameters. `gradsight.capture_backward` runs `loss.backward()` with a
hook on each of the graph's existing nodes (nothing is added to the graph, and `.grad` is
bit-identical to a plain backward) and returns the graph with the gradient that flowed
along each edge. `ModuleAttribution` (forward hooks) records which module made each op.

In Jupyter the graph shows as SVG when Graphviz is installed. Edges point the way the
gradient flows, from the loss to the parameters; their colour and width give
log10(||grad||) on a fixed scale (legend in the picture). `gradsight.capture_graph` does the
same without running `backward()`.""",
    ),
    (
        "code",
        "graph",
        """\
model.zero_grad()
with ModuleAttribution(model) as modules:
    logits = model(images)
loss = criterion(logits, labels)
graph = gradsight.capture_backward(loss, model, modules)

ops = {node.name: node.module for node in graph.nodes if node.kind == "op"}
print(graph, "ops:", ", ".join(ops))
assert ops["ConvolutionBackward0"] == "conv1" and ops["ReluBackward0"] == "relu"
assert ops["MaxPool2DWithIndicesBackward0"] == "pool" and ops["AddmmBackward0"] == "fc"
for node in graph.params():  # each parameter node carries ||p.grad||
    grad = model.get_parameter(node.name).grad
    assert abs(node.grad_norm - grad.norm().item()) <= 1e-5 * grad.norm().item(), node.name
assert not graph.no_grad_params  # every parameter got a gradient
graph  # shown as SVG (or as text without Graphviz)""",
    ),
    (
        "md",
        "trace-md",
        """\
## 6. The backward pass, node by node

`gradsight.trace_backward` runs `loss.backward()` and records each autograd node **in the
order the engine ran it**: what gradient it received and produced (shape, L2 norm, share of
zeros), its time, and what it computed, in words, from the real tensors. This is what
`gradsight trace` prints. The gradients it leaves in `.grad` are bit-identical to those of
an untraced backward.""",
    ),
    (
        "code",
        "trace",
        """\
from gradsight.reports.trace_render import trace_text

model.zero_grad()
criterion(model(images), labels).backward()  # a plain backward, for comparison
plain = {name: p.grad.clone() for name, p in model.named_parameters()}

model.zero_grad()
with ModuleAttribution(model) as modules:
    loss = criterion(model(images), labels)
trace = gradsight.trace_backward(loss, model, modules)
print(trace_text(trace))

names = [event.name for event in trace.events]
assert names[0] == "NllLossBackward0"  # the loss's node runs first
assert names.index("AddmmBackward0") < names.index("MaxPool2DWithIndicesBackward0")
assert names.index("ReluBackward0") < names.index("ConvolutionBackward0")
stored = {event.param for event in trace.events if event.name == "AccumulateGrad"}
assert stored == {"conv1.weight", "conv1.bias", "fc.weight", "fc.bias"}
pool = next(e for e in trace.events if e.name == "MaxPool2DWithIndicesBackward0")
assert pool.produced[0].zeros >= 0.75 * pool.produced[0].numel  # 2x2 max-pool routes to 1 of 4
for name, p in model.named_parameters():
    assert torch.equal(p.grad, plain[name]), name  # tracing changed no gradient""",
    ),
    (
        "md",
        "numpy-md",
        """\
## 7. The same gradients by hand, in NumPy

`gradsight.numpy_ref` computes SimpleCNN's forward and backward pass with NumPy alone (no
torch): im2col convolution, the ReLU mask, max-pool routing, flatten, the linear layer and
softmax cross-entropy, each with its own backward. `simple_cnn_forward_backward` returns the
loss and every parameter's gradient, and `gradsight.explain.compare` measures them against
autograd's. In float64 they agree to a few times 1e-16 (relative to the largest entry), far
inside the 1e-10 tolerance that `gradsight explain` demands.""",
    ),
    (
        "code",
        "numpy",
        """\
from gradsight.explain import FLOAT64_TOLERANCE, compare
from gradsight.numpy_ref import simple_cnn_forward_backward

model64 = gradsight.SimpleCNN(in_channels=3, num_classes=10, image_size=32).double()
params = {name: t.numpy() for name, t in model64.state_dict().items()}
images64 = images.double()

loss_np, grads_np = simple_cnn_forward_backward(params, images64.numpy(), labels.numpy())

loss_torch = criterion(model64(images64), labels)
loss_torch.backward()

checks = [compare("loss", loss_np, loss_torch.item())]
for name, p in model64.named_parameters():
    checks.append(compare(f"{name}.grad", grads_np[name], p.grad.numpy()))
for check in checks:
    print(f"{check.label:18} max rel diff {check.max_rel_diff:.1e}  passed: {check.passed}")
assert FLOAT64_TOLERANCE == 1e-10
assert all(check.passed for check in checks)
assert grads_np["fc.weight"].shape == (10, 4096)""",
    ),
    (
        "md",
        "explain-md",
        """\
`gradsight.explain.explain` runs the whole walk-through above (scalar, forward and backward
layer by layer, `zero_grad`, one SGD step) on one batch and checks each step against NumPy
or a formula; `gradsight explain --like-article` prints it.""",
    ),
    (
        "code",
        "explain",
        """\
from gradsight.explain import ExplainConfig, explain

walk = explain(ExplainConfig(like_article=True))
print([step.name for step in walk.layers.backward])
print(len(walk.comparisons()), "comparisons, failures:", walk.failures())
assert walk.ok and walk.scalar.comparison.passed""",
    ),
    (
        "md",
        "train-md",
        """\
## 8. A short training run, watched

`gradsight.prepare` turns a `TrainConfig` into data, model and optimizer;
`gradsight.fit` runs the article's loop (forward, loss, `zero_grad`, `backward`, `step`) and
calls observers at each event. Here the model is SimpleCNN on `fashion-mnist-mini`, the real
Fashion-MNIST images bundled with gradsight (1x28x28, 12,800 for training and 2,000 for
testing), for 2 epochs of SGD (lr 0.01, batch 64) on the CPU: a few seconds.

Two observers watch it: `gradsight.GradMonitor`, which checks every step's gradients
(NaN/Inf, exploding, vanishing, missing gradients) and reports findings, and a small one of
our own that keeps the metrics the loop logs. `gradsight.reports.plots` draws them as
`gradsight train` does in `curves.png`.""",
    ),
    (
        "code",
        "train",
        """\
from gradsight.train import Observer

config = gradsight.TrainConfig(epochs=2, device="cpu", seed=42, log_every=20)
prepared = gradsight.prepare(config)
info = prepared.data.info
print(f"{info.name}: {info.train_size} training images, {info.test_size} test images")


class KeepMetrics(Observer):
    \"\"\"Keep every step and epoch record, as metrics.jsonl would hold them.\"\"\"

    def __init__(self):
        self.records = []

    def on_log(self, state, record):
        self.records.append(record.to_dict())

    def on_epoch_end(self, state, record):
        self.records.append(record.to_dict())


metrics = KeepMetrics()
monitor = gradsight.GradMonitor(prepared.model, on_finding=print)
result = gradsight.fit(prepared, [monitor, metrics])

for e in result.epochs:
    train_part = f"train loss {e.train_loss:.3f} acc {e.train_acc:.3f}"
    print(f"epoch {e.epoch}: {train_part} | test loss {e.test_loss:.3f} acc {e.test_acc:.3f}")
print(f"monitor findings: {monitor.findings}, last total grad norm {monitor.last_total:.3f}")
assert result.status == "completed" and result.steps == 2 * 12800 // 64
assert result.epochs[-1].train_loss < result.epochs[0].train_loss
assert result.epochs[-1].test_acc > 0.7  # 10 classes: chance is 0.1
assert not [f for f in monitor.findings if f.severity == "error"]  # no NaN/Inf gradient""",
    ),
    (
        "code",
        "curves",
        """\
import io

from IPython.display import Image

from gradsight.reports.plots import curve_data, draw_curves

curves = curve_data(metrics.records)
assert curves.epochs == (1, 2) and len(curves.steps) == result.steps // config.log_every
png = draw_curves(curves, io.BytesIO()).getvalue()
Image(png)  # loss and accuracy per epoch, loss per logged step""",
    ),
    (
        "md",
        "nan-md",
        """\
## 9. A planted NaN, found by the monitor

Now a bug of the kind that costs hours: a per-image normalisation layer, `norm`, divides each
image by its standard deviation. On a blank image (all pixels equal) that is $0 / 0$, a NaN
that poisons the loss and then every gradient. Here it strikes at step 3, when one of the 32
images in the batch is blank.

`gradsight.watch` runs the monitor in our own plain loop: give it the loss as a function of
the model and the batch, and call `run.check(step, batch)` after `backward()`. When a
gradient turns NaN/Inf it replays the step to find where the NaN was **born**: the module
(`norm`), the torch function (`div`) and the pass (forward), and it returns `True` so that
the bad update is skipped; the weights stay finite. Without `run_dir`, nothing is written.""",
    ),
    (
        "code",
        "nan",
        """\
class PerImageNorm(nn.Module):
    \"\"\"Standardise each image: (x - mean) / std. A blank image gives 0 / 0 = NaN.\"\"\"

    def forward(self, x):
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / std


net = nn.Sequential(
    collections.OrderedDict(
        norm=PerImageNorm(),
        cnn=gradsight.SimpleCNN(in_channels=1, num_classes=10, image_size=28),
    )
)
optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
train = prepared.data.train  # the bundled images, as tensors


def loss_fn(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


with gradsight.watch(net, loss_fn, on_finding=print) as run:
    for step in range(8):
        batch = (
            train.images[32 * step : 32 * (step + 1)].clone(),
            train.labels[32 * step : 32 * (step + 1)],
        )
        if step == 3:
            batch[0][5] = 0.0  # the planted bug: a blank image
        optimizer.zero_grad()
        loss = loss_fn(net, batch)
        loss.backward()
        if run.check(step, batch):  # True: skip this update (and stop)
            break
        optimizer.step()

finding = run.findings[0]
assert (step, finding.step, finding.kind, finding.severity) == (3, 3, "nonfinite", "error")
assert (finding.phase, finding.module, finding.op) == ("forward", "norm", "div")
assert "norm" in finding.message
assert all(torch.isfinite(p).all() for p in net.parameters())  # the NaN update was skipped""",
    ),
    (
        "md",
        "next-md",
        """\
## Where next

- `gradsight train`, `gradsight graph`, `gradsight trace` and `gradsight explain` do all of
  the above from the command line; `gradsight report RUN_DIR` turns a run folder into one
  HTML page with a backward step-through.
- `gradsight.watch(model, loss_fn, run_dir=...)` in your own loop writes the same run folder
  as `gradsight train` (metrics, findings, the first step's graph and trace, plots, report).
- See the README for the monitor's findings, checkpoints and resume, and export.""",
    ),
]


def build() -> nbformat.NotebookNode:
    """Return the notebook: cells in order, no outputs, no execution counts."""
    cells = []
    for kind, cell_id, source in CELLS:
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell.id = cell_id
        cells.append(cell)
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


def render() -> str:
    """Return the notebook file's text, exactly as this script writes it."""
    text = nbformat.writes(build())
    return text if text.endswith("\n") else text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if it differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = NOTEBOOK.read_text(encoding="utf-8") if NOTEBOOK.exists() else None
        if current != text:
            print(f"{NOTEBOOK} is out of date: run python scripts/make_notebook.py")
            return 1
        print(f"{NOTEBOOK} is up to date")
        return 0
    NOTEBOOK.parent.mkdir(parents=True, exist_ok=True)
    NOTEBOOK.write_text(text, encoding="utf-8")
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
