"""Check the reference twins in tests/reference_*.py against the real libraries, once.

Not a test (the tests never import torchvision or timm): run it with a Python that has
torch, torchvision and timm installed, e.g. a side virtualenv::

    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm
    /tmp/tvenv/bin/python bench/check_references.py

For each library model it checks that the twin has the same state_dict keys, in the same
order, with the same shapes and the same parameter count; then it randomises the library
model's weights and batch-norm statistics, loads them into the twin with strict=True and
compares the outputs in eval mode and in train mode (dropout off; the aux head included),
on the same random input. It prints the figures and exits 1 if anything differs.

The GoogLeNet twin also stands in for torchvision in bench/deploy_speed.py where
torchvision is missing, so its eager channels_last latency is compared with the
library's too (interleaved rounds, medians; printed, not checked).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import timm
import torchvision
from reference_inception import InceptionResNetV2, InceptionV3Torchvision, InceptionV4
from reference_models import GoogLeNetTorchvision


def randomise(model: torch.nn.Module) -> None:
    """Weights and batch-norm statistics far from their defaults, so that a swapped or
    missing key changes the output."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("bn.weight", "running_mean")):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)


def outputs(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        y = model(x)
    return tuple(y) if isinstance(y, tuple) else (y,)


def check(name: str, library: torch.nn.Module, twin: torch.nn.Module, size: int) -> bool:
    theirs, ours = library.state_dict(), twin.state_dict()
    same_keys = list(theirs) == list(ours)
    same_shapes = same_keys and all(theirs[k].shape == ours[k].shape for k in theirs)
    params = sum(p.numel() for p in library.parameters())
    twin_params = sum(p.numel() for p in twin.parameters())
    print(
        f"{name}: {len(theirs)} keys, identical names and order: {same_keys}, shapes: {same_shapes}"
    )
    print(f"  parameters: library {params:,}, twin {twin_params:,}")
    if not same_shapes:
        print("  only in the library:", sorted(set(theirs) - set(ours))[:10])
        print("  only in the twin:", sorted(set(ours) - set(theirs))[:10])
        return False
    randomise(library)
    twin.load_state_dict(library.state_dict(), strict=True)
    for module in (*library.modules(), *twin.modules()):
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # train mode compares everything but the random masks
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    ok = params == twin_params
    for mode in ("eval", "train"):
        library.train(mode == "train")
        twin.train(mode == "train")
        start = time.perf_counter()
        expected, got = outputs(library, x), outputs(twin, x)
        seconds = time.perf_counter() - start
        diffs = [(e - g).abs().max().item() for e, g in zip(expected, got)]
        exact = len(expected) == len(got) and all(torch.equal(e, g) for e, g in zip(expected, got))
        shapes = [tuple(t.shape) for t in got]
        print(
            f"  {mode:5} at {size}x{size}: {len(got)} output(s) {shapes}, max |diff| "
            f"{max(diffs):.3g}, bitwise identical: {exact} ({seconds:.1f} s)"
        )
        ok = ok and len(expected) == len(got) and max(diffs) <= 1e-5
    return ok


def same_speed(library: torch.nn.Module, twin: torch.nn.Module, size: int) -> None:
    """Eager channels_last latency of both in eval, as bench/deploy_speed.py times them."""
    import statistics

    models = {
        "library": library.eval().to(memory_format=torch.channels_last),
        "twin": twin.eval().to(memory_format=torch.channels_last),
    }
    for batch, rounds in ((1, 30), (16, 8)):
        x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
        times: dict[str, list[float]] = {name: [] for name in models}
        with torch.inference_mode():
            for model in models.values():
                model(x)
            for _ in range(rounds):
                for name, model in models.items():
                    start = time.perf_counter()
                    model(x)
                    times[name].append(time.perf_counter() - start)
        ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        print(
            f"  eager channels_last, batch {batch}: library {ms['library']:.1f} ms, "
            f"twin {ms['twin']:.1f} ms, twin / library {ms['twin'] / ms['library']:.3f}"
        )


def main() -> int:
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}"
    )
    googlenet = (
        "torchvision googlenet(aux_logits=True, init_weights=False)",
        torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False),
        GoogLeNetTorchvision(aux_logits=True),
        224,
    )
    cases = [
        googlenet,
        (
            "torchvision inception_v3(aux_logits=True, init_weights=False)",
            torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False),
            InceptionV3Torchvision(),
            299,
        ),
        (
            "torchvision inception_v3(transform_input=True)",
            torchvision.models.inception_v3(
                weights=None, aux_logits=True, init_weights=False, transform_input=True
            ),
            InceptionV3Torchvision(transform_input=True),
            299,
        ),
        ("timm inception_v4", timm.create_model("inception_v4"), InceptionV4(), 299),
        (
            "timm inception_resnet_v2",
            timm.create_model("inception_resnet_v2"),
            InceptionResNetV2(),
            299,
        ),
    ]
    results = [check(*case) for case in cases]
    same_speed(*googlenet[1:])
    print("all identical" if all(results) else "DIFFERENCES FOUND")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
