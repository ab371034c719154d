"""Pytest helpers for dd-bench and its plugin authors (loaded as the ``dd_bench`` pytest plugin)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from . import conformance
from .plugins import Registry, get_plugin_manager
from .specs import DatasetSpec, DistillerSpec, ModelSpec

TOY_SUITE: dict[str, Any] = {
    "name": "toy",
    "datasets": ["toy"],
    "ipcs": [1],
    "methods": {"random": {}, "full": {}},
    "default_preset": "smoke",
    "distill_model": "mlp",
    "eval_models": ["mlp"],
    "seeds": [0],
    "eval_seeds": 1,
    "eval": {"epochs": 1, "dsa": False},
}


def toy_suite_doc(**changes: Any) -> dict[str, Any]:
    """A suite document over the built-in ``toy`` dataset that runs in seconds, with ``changes`` applied."""
    return copy.deepcopy({**TOY_SUITE, **changes})


def one_error_line(capsys: Any, argv: list[str]) -> str:
    """Run ``dd-bench argv``; assert it failed with exit 2 and one ``dd-bench: error:`` line, no
    traceback; return that line (``capsys``: pytest's fixture)."""
    from .cli import main

    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dd-bench: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def write_image_folder(
    root: Any,
    classes: Any = ("cat", "dog", "fox"),
    per_class: int = 6,
    val_per_class: int = 2,
    size: tuple[int, int] = (12, 12),
    grey: bool = False,
    seed: int = 0,
) -> Any:
    """Write ``root/train/<class>/`` and ``root/val/<class>/`` of small PNG and JPEG images (alternating),
    whose pixels differ by class, for tests of folder datasets; returns ``root`` as a ``Path``."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    root, rng = Path(root), np.random.default_rng(seed)
    w, h = size
    for split, count in (("train", per_class), ("val", val_per_class)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = (rng.random((h, w) if grey else (h, w, 3)) * 60 + 190 * c / max(1, len(classes) - 1)).astype(
                    np.uint8
                )
                Image.fromarray(pixels).save(folder / f"{i:05d}.{'png' if i % 2 else 'jpg'}")
    return root


def make_registry(*plugins: Any, autoload: bool = False) -> Registry:
    """A fresh registry: the built-in plugins (and, with ``autoload``, installed ones) plus ``plugins``."""
    return Registry(get_plugin_manager(plugins, autoload=autoload))


@pytest.fixture
def ddb_registry_factory() -> Callable[..., Registry]:
    """Build a fresh ``Registry`` per call with inline plugins registered."""
    return make_registry


def _assert_conform(results: list[conformance.CheckResult]) -> list[conformance.CheckResult]:
    """Fail the test with every failing check's reason; skip it if nothing could be checked."""
    failed = [f"{r.kind} {r.name}: {r.check}: {r.reason}" for r in results if not r.passed]
    if failed:
        pytest.fail("\n".join(failed), pytrace=False)
    if all(r.status == conformance.SKIP for r in results):
        pytest.skip(results[0].reason)
    return results


def check_distiller(
    spec: DistillerSpec, registry: Registry | None = None, **options: Any
) -> list[conformance.CheckResult]:
    """Run ``dd-bench check-plugin``'s distiller checks on ``spec``; fail the test on any failure.

    ``registry`` supplies digits, toy, the distillation model and expert optimizers (default:
    the built-ins); ``options`` are ``time_limit`` and ``model``.
    """
    return _assert_conform(conformance.distiller_checks(spec, registry or make_registry(), **options))


def check_model(spec: ModelSpec, registry: Registry | None = None) -> list[conformance.CheckResult]:
    """Run the model checks on ``spec`` (``registry`` supplies toy); fail the test on any failure."""
    return _assert_conform(conformance.model_checks(spec, registry or make_registry()))


def check_dataset(spec: DatasetSpec) -> list[conformance.CheckResult]:
    """Run the dataset checks on ``spec``; fail the test on any failure, skip it if the data is missing."""
    return _assert_conform(conformance.dataset_checks(spec))


def write_tiny_diffusion_pipeline(folder: Any, seed: int = 0) -> Any:
    """Save a tiny, randomly initialised Stable Diffusion img2img pipeline (UNet, VAE with a 2x
    downsampling, one-layer CLIP text encoder, byte-level tokenizer, DDIM) to ``folder``, for
    tests of methods that decode through a latent diffusion model without any download. Needs
    the ``diffusion`` extra (diffusers, transformers); returns ``folder`` as a ``Path``."""
    import json
    from pathlib import Path

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16),
            layers_per_block=1,
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=16,
            norm_num_groups=4,
            attention_head_dim=2,
        )
        vae = AutoencoderKL(
            block_out_channels=(8, 16),
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            norm_num_groups=4,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
        )
        text = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=514,
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                max_position_embeddings=32,
                bos_token_id=512,
                eos_token_id=513,
                pad_token_id=513,
            )
        )
    # CLIP's byte-level alphabet (printable bytes as themselves, the rest shifted past 255), each
    # symbol alone and word-final: every string tokenizes, one token per byte, no merges
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = [chr(b) for b in keep] + [chr(256 + i) for i in range(256 - len(keep))]
    vocab = {
        **{c: i for i, c in enumerate(symbols)},
        **{c + "</w>": 256 + i for i, c in enumerate(symbols)},
        "<|startoftext|>": 512,
        "<|endoftext|>": 513,
    }
    words = folder / "words"
    words.mkdir(parents=True, exist_ok=True)
    (words / "vocab.json").write_text(json.dumps(vocab))
    (words / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(words / "vocab.json"), str(words / "merges.txt"), model_max_length=32)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionImg2ImgPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
