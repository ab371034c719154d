"""D4M and OQ through the latent diffusion model: prototypes denoised by Stable Diffusion's
img2img with the class prompt, on a tiny randomly initialised pipeline written here."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers", reason="the diffusion extra: pip install 'dd-bench[diffusion]'")
pytest.importorskip("transformers", reason="the diffusion extra: pip install 'dd-bench[diffusion]'")

from dd_bench import api  # noqa: E402
from dd_bench.errors import ConfigError  # noqa: E402
from dd_bench.testing import write_tiny_diffusion_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return write_tiny_diffusion_pipeline(tmp_path_factory.mktemp("sd") / "pipe")


def _kw(pipeline, **changes):
    return {
        "latent": "vae",
        "vae": str(pipeline),
        "vae_subfolder": "vae",
        "vae_size": 16,
        "decode": "img2img",
        "denoise_steps": 4,
        "iterations": 5,
        "prompt": "a photo of the digit {name}",
        **changes,
    }


def _d4m(registry, digits, tmp_path, overrides, seed=0, **kw):
    return api.distill(
        registry,
        "d4m",
        digits,
        2,
        seed=seed,
        preset="smoke",
        overrides=overrides,
        cache_dir=tmp_path,
        progress=False,
        **kw,
    )


def test_prototypes_are_denoised_into_images_of_the_datas_shape_with_the_class_prompt(
    registry, digits, pipeline, tmp_path, monkeypatch
):
    from diffusers import StableDiffusionImg2ImgPipeline

    seen = []
    encode = StableDiffusionImg2ImgPipeline.encode_prompt

    def spy(self, prompt, *args, **kwargs):
        seen.extend(prompt)
        return encode(self, prompt, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionImg2ImgPipeline, "encode_prompt", spy)
    syn = _d4m(registry, digits, tmp_path, _kw(pipeline))
    assert syn.images.shape == (20, *digits.train_x.shape[1:]) and torch.isfinite(syn.images).all()
    assert syn.labels.tolist() == [c for c in range(10) for _ in range(2)]
    prompts = [f"a photo of the digit {digits.class_name(c)}" for c in range(10)]
    assert seen == [p for p in prompts for _ in range(2)]  # each prototype's prompt names its class
    assert syn.metadata["prompts"] == prompts


def test_denoising_is_seeded_and_removing_it_changes_the_set(registry, digits, pipeline, tmp_path):
    a = _d4m(registry, digits, tmp_path, _kw(pipeline))
    assert torch.equal(a.images, _d4m(registry, digits, tmp_path, _kw(pipeline)).images)
    assert not torch.equal(a.images, _d4m(registry, digits, tmp_path, _kw(pipeline), seed=1).images)
    vae_only = _d4m(registry, digits, tmp_path, _kw(pipeline, decode="latent"))
    assert vae_only.images.shape == a.images.shape
    assert (vae_only.images - a.images).abs().mean() > 1e-3  # the diffusion step is what differs
    weaker = _d4m(registry, digits, tmp_path, _kw(pipeline, strength=0.25))
    assert not torch.equal(weaker.images, a.images)


def test_oq_decodes_its_weighted_centroids_the_same_way_and_shards_agree(registry, digits, pipeline, tmp_path):
    kw = dict(_kw(pipeline), labels="hard")
    whole = api.distill(registry, "oq", digits, 2, preset="smoke", overrides=kw, cache_dir=tmp_path, progress=False)
    parts = api.distill(
        registry, "oq", digits, 2, preset="smoke", overrides=kw, cache_dir=tmp_path, progress=False, shards=3
    )
    assert torch.equal(whole.images, parts.images) and torch.equal(whole.weights, parts.weights)
    assert whole.weights is not None and whole.metadata["prompts"] == parts.metadata["prompts"]


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"prompt": "a photo of a digit"},
            "prompt='a photo of a digit' is not allowed: the template must contain {name}",
        ),
        ({"prompt": "{name} {other}"}, "use {name} as its only placeholder"),
        ({"latent": "pca"}, "decode='img2img' is not allowed with latent='pca'"),
        ({"strength": 0.0}, "strength=0.0 is not allowed: use 0 < strength <= 1"),
    ],
)
def test_bad_settings_are_one_line(registry, pipeline, changes, message):
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        api.resolve_config(registry, "d4m", "smoke", _kw(pipeline, **changes))


def test_missing_weights_and_another_model_type_are_refused_before_any_work(registry, digits, pipeline, tmp_path):
    with pytest.raises(ConfigError, match="could not be loaded from local files"):
        _d4m(registry, digits, tmp_path, _kw(tmp_path / "nowhere"))
    vae_only = tmp_path / "just-a-vae"  # a folder holding an AutoencoderKL, not a whole pipeline
    from diffusers import AutoencoderKL

    AutoencoderKL.from_pretrained(pipeline / "vae").save_pretrained(vae_only / "vae")
    with pytest.raises(ConfigError, match=r"could not be loaded as a Stable Diffusion pipeline from local files"):
        _d4m(registry, digits, tmp_path, _kw(vae_only))
