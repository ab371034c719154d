"""What the decoupled methods cost at their papers' ImageNet-1K settings, from per-unit costs
measured on this machine.

    python benchmarks/paper_cost.py [--gpu-factor 100] [--out benchmarks/results/paper_cost.md]

Measures, with randomly initialised networks of the papers' architectures (the compute does
not depend on the weights) at the papers' sizes, in float32 on this machine's CPU:

* **SRe2L**: seconds of one recovery iteration (crop, ResNet-18 forward and backward through
  the images, BN-statistics loss, Adam step) per image, at 224 px, batch 10; the paper runs
  1,000 iterations per image (teacher pretrained: no training cost).
* **RDED**: seconds per scored crop (random-resized crop and a ResNet-18 forward at 224 px);
  the paper scores 300 candidates x 5 crops per class, whatever the IPC.
* **D4M / OQ**: seconds per image of Stable Diffusion v1.5's VAE encoder at 512 px (every
  training image is encoded once, 1,281,167 of them), of one UNet step at batch 2 (the
  classifier-free guidance pair) on a 4x64x64 latent (img2img at strength 0.7 runs 35 of 50
  steps per image) and of the VAE decoder per image. Per-class k-means is left out (seconds).

Then multiplies out to device-hours for one ImageNet-1K cell at IPC 10 and 50. The GPU column
divides the CPU figure by ``--gpu-factor``, an assumed speed-up of one data-centre GPU over
these cores: a stated factor, not a measurement (replace it by a GPU run's figures when one is
lent).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CLASSES, TRAIN_IMAGES = 1000, 1_281_167


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def sre2l_per_image_iteration(registry) -> float:
    from dd_bench_sre2l import PRESETS, SRe2LConfig, recover

    from dd_bench.specs import DataShape

    teacher = registry.model("tv:resnet18").build(DataShape(3, 224, 224, CLASSES)).eval()
    settings = {k: v for k, v in PRESETS["paper"].items() if not k.startswith("teacher")}
    config = SRe2LConfig(**{**settings, "iterations": 2})
    batch, g = 10, torch.Generator().manual_seed(0)
    init, targets = torch.randn(batch, 3, 224, 224, generator=g), torch.arange(batch)
    lo, hi = torch.full((1, 3, 1, 1), -2.2), torch.full((1, 3, 1, 1), 2.7)
    return timed(lambda: recover(teacher, init, targets, config, g, lo, hi), 2) / config.iterations / batch


def rded_per_crop(registry) -> float:
    from dd_bench.augment import random_resized_crop
    from dd_bench.specs import DataShape

    model = registry.model("tv:resnet18").build(DataShape(3, 224, 224, CLASSES)).eval()
    batch, g = 64, torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 224, 224, generator=g)

    def score():
        with torch.no_grad():
            model(random_resized_crop(x, g, (0.08, 1.0)))

    return timed(score, 2) / batch


def stable_diffusion_parts() -> tuple[float, float, float]:
    """Seconds per image of SD v1.5's VAE encoder (512 px), of one UNet step at batch 2, of the VAE decoder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    ).eval()
    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    ).eval()
    image, latent, text = torch.randn(1, 3, 512, 512), torch.randn(2, 4, 64, 64), torch.randn(2, 77, 768)
    with torch.no_grad():
        encode = timed(lambda: vae.encode(image).latent_dist.mean, 1)
        step = timed(lambda: unet(latent, 500, encoder_hidden_states=text).sample, 1)
        decode = timed(lambda: vae.decode(latent[:1]).sample, 1)
    return encode, step, decode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gpu-factor", type=float, default=100.0, help="assumed GPU speed-up over these cores (default 100)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "paper_cost.md")
    args = parser.parse_args()

    from dd_bench.plugins import Registry, get_plugin_manager

    registry = Registry(get_plugin_manager())
    print("measuring SRe2L's recovery step", file=sys.stderr)
    sre2l = sre2l_per_image_iteration(registry)
    print("measuring RDED's crop scoring", file=sys.stderr)
    rded = rded_per_crop(registry)
    print("measuring Stable Diffusion v1.5's VAE and UNet (random weights)", file=sys.stderr)
    encode, step, decode = stable_diffusion_parts()
    denoise_per_image = 35 * step + decode  # strength 0.7 of 50 steps, one guidance pair per image

    rows = []
    for ipc in (10, 50):
        images = CLASSES * ipc
        rows.append(("sre2l", ipc, images * 1000 * sre2l, f"{images:,} images x 1,000 iterations x {sre2l:.3f} s"))
        rows.append(("rded", ipc, CLASSES * 1500 * rded, f"1,000 classes x 1,500 crops x {rded:.4f} s"))
        for method in ("d4m", "oq"):
            rows.append(
                (
                    method,
                    ipc,
                    TRAIN_IMAGES * encode + images * denoise_per_image,
                    f"1,281,167 encodes x {encode:.2f} s + {images:,} images x (35 x {step:.2f} s + {decode:.2f} s)",
                )
            )
        rows.append(
            (
                "oq (paper-vae)",
                ipc,
                TRAIN_IMAGES * encode + images * decode,
                f"1,281,167 encodes x {encode:.2f} s + {images:,} decodes x {decode:.2f} s",
            )
        )

    from dd_bench.runtime import git_sha
    from dd_bench.synthetic import atomic_write_text

    sha = (git_sha() or "unknown")[:7]
    lines = [
        "# Paper-settings cost of one ImageNet-1K cell",
        "",
        f"Command: `python benchmarks/paper_cost.py --gpu-factor {args.gpu_factor:g}` at {sha} ({time.strftime('%Y-%m-%d')},"
        f" {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}, float32).",
        "",
        "Measured here per unit (randomly initialised networks of the papers' architectures and sizes):",
        "",
        f"- SRe2L recovery iteration, ResNet-18 at 224 px: {sre2l:.3f} s per image (batch 10)",
        f"- RDED crop scored, ResNet-18 at 224 px: {rded:.4f} s per crop (batch 64)",
        f"- SD v1.5 VAE encoder at 512 px: {encode:.2f} s per image; UNet step at batch 2 (guidance pair), 4x64x64:"
        f" {step:.2f} s; VAE decoder: {decode:.2f} s per image",
        "",
        f"GPU hours = CPU hours / {args.gpu_factor:g}: an assumed speed-up of one data-centre GPU over these 2 cores, not a"
        " measurement. Teachers are pretrained (no cost); the evaluation's training is not included. Divide by the shard"
        " count for the wall time on that many GPUs.",
        "",
        "| method | IPC | how | CPU hours (these cores) | GPU hours (assumed factor) |",
        "|---|---:|---|---:|---:|",
    ]
    for method, ipc, seconds, how in rows:
        lines.append(f"| {method} | {ipc} | {how} | {seconds / 3600:,.0f} | {seconds / 3600 / args.gpu_factor:,.1f} |")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
