"""Prototypes through the latent diffusion model: D4M's decoding step, also the
optimal-quantization paper's (DDOQ decodes its weighted centroids the same way).

A class's latent prototypes (Stable Diffusion VAE latents, scaled as the UNet takes them) are
the starting point of Stable Diffusion's img2img: noised to ``strength`` of the schedule, then
denoised with classifier-free guidance (``guidance_scale``) towards the class prompt (the
template ``prompt`` with ``{name}`` replaced by the class's name) and away from
``negative_prompt``, then decoded by the VAE. D4M's settings: strength 0.7, guidance 8,
negative prompt "cartoon, anime, painting", 50 steps. Weights come from local files only.
"""

from __future__ import annotations

from typing import Any

import torch

from dd_bench.plugin import ConfigError, RealData

from .latents import VAELatent


class Img2ImgDecoder:
    """A local ``StableDiffusionImg2ImgPipeline`` that turns one class's prototype latents into images."""

    def __init__(self, pipe: Any, latent: VAELatent, data: RealData, config: Any):
        self.pipe, self.latent, self.data, self.config = pipe, latent, data, config

    @classmethod
    def load(cls, config: Any, latent: VAELatent, data: RealData, device: torch.device) -> Img2ImgDecoder:
        try:
            from diffusers import StableDiffusionImg2ImgPipeline
        except ImportError:
            raise ConfigError(
                "decode='img2img' needs the optional dependencies diffusers and transformers, which are not installed"
                " (pip install 'dd-bench[diffusion]'); without them use decode=latent"
            ) from None
        try:
            pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
                config.vae, local_files_only=True, safety_checker=None, requires_safety_checker=False
            )
        except Exception as exc:  # a missing folder, missing parts, or another model type all land here
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(
                f"vae={config.vae!r} could not be loaded as a Stable Diffusion pipeline from local files ({type(exc).__name__}:"
                f" {first}); decode=img2img needs a folder (or cached name) holding a whole pipeline (unet, vae, text_encoder,"
                " tokenizer, scheduler); dd-bench never downloads weights"
            ) from None
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, latent, data, config)

    def prompt(self, c: int) -> str:
        return self.config.prompt.format(name=self.data.class_name(c))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, c: int, generator: torch.Generator) -> torch.Tensor:
        """Class ``c``'s flat prototype codes -> images in the data's normalisation, ``denoise_batch`` at a time."""
        cfg = self.config
        out = []
        for s in range(0, codes.shape[0], cfg.denoise_batch):
            z = self.latent.unflatten(codes[s : s + cfg.denoise_batch]).to(self.pipe.device, self.pipe.unet.dtype)
            n = z.shape[0]
            images = self.pipe(
                prompt=[self.prompt(c)] * n,
                negative_prompt=[cfg.negative_prompt] * n,
                image=z,
                strength=cfg.strength,
                guidance_scale=cfg.guidance_scale,
                num_inference_steps=cfg.denoise_steps,
                generator=generator,
                output_type="pt",
            ).images
            out.append(self.latent.from_unit(images.to(self.latent.mean.device)))
        return torch.cat(out)
