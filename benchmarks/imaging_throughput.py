"""Throughput of segmentation inference: the tiled batched path (``imaging.infer``) against a naive loop.

Prints JSON. On the CPU (float32), megapixels per second at 512² (8 images one by one, untiled, versus all
their 256-pixel tiles batched, and versus 512-pixel tiles, i.e. whole images batched) and at 2048² (the whole
image in one forward pass versus 256-pixel tiles with 32 pixels of overlap), the tiled path with batches of 1 and
8, and the ratio tiled/naive; the same model in the same run, median of ``--repeats`` after a warm-up. With CUDA,
also images per second of the tiled path in bf16 (batches of 32). The model is
``imaging.models.unet.UNet`` when it can be imported, else a small stand-in U-Net defined here (the JSON says
which). ``inference_optimizations`` lists what ``imaging.infer.inference_copy`` applied to the model for the tiled
path (BatchNorm folding, fused oneDNN conv + ReLU); the naive loop runs the unmodified model.
``python benchmarks/imaging_throughput.py [--repeats 3] [--threads N] [--no-gpu]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from imaging.infer import cpu_bf16_native, inference_copy, predict_tiled_batch

N_CLASSES = 5
CPU_BATCH_SIZES = (1, 8)  # on the CPU inference is memory-bound: small batches are faster


class StandInUNet(nn.Module):
    """Two-level U-Net, 16/32 channels: (B, 1, h, w) → (B, 5, h, w) logits, h and w multiples of 2."""

    def __init__(self, width: int = 16, n_classes: int = N_CLASSES) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.enc = block(1, width)
        self.mid = block(width, 2 * width)
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec = block(2 * width, width)
        self.head = nn.Conv2d(width, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x)
        m = self.mid(nn.functional.max_pool2d(e, 2))
        return self.head(self.dec(torch.cat([e, self.up(m)], dim=1)))


def make_model() -> tuple[nn.Module, str]:
    """The project's U-Net if it can be imported (and built with defaults), else the stand-in."""
    try:
        unet = importlib.import_module("imaging.models.unet").UNet
        try:
            model = unet(in_channels=1, n_classes=N_CLASSES)
        except TypeError:
            model = unet()
        return model.eval(), "imaging.models.unet.UNet"
    except Exception as exc:  # the U-Net is not there yet, or its constructor differs
        return StandInUNet().eval(), f"stand-in StandInUNet (imaging.models.unet.UNet not usable: {type(exc).__name__})"


def naive(model: nn.Module, images: list[np.ndarray]) -> None:
    """One image at a time, whole image in one pass, float32, default memory format."""
    model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    with torch.no_grad():
        for im in images:
            probs = torch.softmax(model(torch.from_numpy(im)[None, None]), dim=1)[0]
            probs.argmax(0).to(torch.uint8).numpy()


def timed(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def cpu_case(
    model: nn.Module, size: int, n_images: int, repeats: int, tile: int = 256, cpu_bf16: bool = False
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    images = [rng.random((size, size), dtype=np.float32) for _ in range(n_images)]
    mpix = n_images * size * size / 1e6
    t_naive = timed(lambda: naive(model, images), repeats)
    out: dict[str, Any] = {
        "size": size,
        "tile": tile,
        "images": n_images,
        "naive_s": round(t_naive, 4),
        "naive_mpix_per_s": round(mpix / t_naive, 3),
        "tiled": [],
    }
    for batch_size in CPU_BATCH_SIZES:
        t = timed(
            lambda bs=batch_size: predict_tiled_batch(  # type: ignore[misc]
                model, images, tile=tile, overlap=32, batch_size=bs, device="cpu", cpu_bf16=cpu_bf16
            ),
            repeats,
        )
        out["tiled"].append(
            {
                "batch_size": batch_size,
                "s": round(t, 4),
                "mpix_per_s": round(mpix / t, 3),
                "ratio_tiled_over_naive": round(t_naive / t, 3),
            }
        )
    return out


def gpu_case(model: nn.Module, size: int, n_images: int, repeats: int, compile_model: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    images = [rng.random((size, size), dtype=np.float32) for _ in range(n_images)]

    def run() -> None:
        predict_tiled_batch(
            model, images, tile=256, overlap=32, batch_size=32, device="cuda", amp=True, compile=compile_model
        )
        torch.cuda.synchronize()

    t = timed(run, repeats)
    return {
        "size": size,
        "images": n_images,
        "bf16": True,
        "compile": compile_model,
        "s": round(t, 4),
        "images_per_s": round(n_images / t, 2),
        "mpix_per_s": round(n_images * size * size / 1e6 / t, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-gpu", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile on the GPU")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, which = make_model()
    out: dict[str, Any] = {
        "model": which,
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "inference_optimizations": inference_copy(model)[1],
        "overlap": 32,
        "repeats": args.repeats,
        "cpu_float32": [
            cpu_case(model, 512, 8, args.repeats),
            cpu_case(model, 512, 8, args.repeats, tile=512),  # one window per image: batching alone
            cpu_case(model, 2048, 1, args.repeats),
        ],
    }
    if cpu_bf16_native():  # the tiled path in bf16 against the same float32 naive loop
        out["cpu_bf16"] = [
            cpu_case(model, 512, 8, args.repeats, cpu_bf16=True),
            cpu_case(model, 512, 8, args.repeats, tile=512, cpu_bf16=True),
            cpu_case(model, 2048, 1, args.repeats, cpu_bf16=True),
        ]
    else:
        out["cpu_bf16"] = "this CPU has no native bf16 (AVX512-BF16/AMX): not measured"
    if torch.cuda.is_available() and not args.no_gpu:
        out["gpu"] = torch.cuda.get_device_name()
        out["gpu_bf16"] = [
            gpu_case(model, 512, 64, args.repeats, args.compile),
            gpu_case(model, 2048, 8, args.repeats, args.compile),
        ]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
