"""RDED: the teacher-preferred crops win, and patches are stitched row-major."""

from __future__ import annotations

import pytest
import torch
from dd_bench_rded import select_patches, stitch

from dd_bench import api
from dd_bench.errors import ConfigError


def brightness_teacher(x):
    """A constructed teacher for 2 classes: class 1's logit grows with the image's brightness."""
    b = x.mean(dim=(1, 2, 3))
    return torch.stack([torch.zeros_like(b), 4 * b], dim=1)


def test_selection_keeps_the_patches_the_teacher_prefers():
    # constant images (any crop keeps the brightness), shuffled; the bright ones are "class 1"
    levels = torch.linspace(-1, 1, 12)[torch.randperm(12, generator=torch.Generator().manual_seed(0))]
    images = levels.view(12, 1, 1, 1).expand(12, 1, 8, 8).clone()
    patches, loss, order = select_patches(
        images, 1, brightness_teacher, 4, 3, torch.Generator().manual_seed(1), (0.08, 1.0)
    )
    assert sorted(levels[order].tolist(), reverse=True) == sorted(levels.tolist(), reverse=True)[:4]
    assert torch.all(loss[:-1] <= loss[1:])  # best first
    assert torch.allclose(patches.mean(dim=(1, 2, 3)), levels[order], atol=1e-5)
    # for class 0 the same teacher prefers the dark ones
    _, _, order0 = select_patches(images, 0, brightness_teacher, 4, 3, torch.Generator().manual_seed(1), (0.08, 1.0))
    assert sorted(levels[order0].tolist()) == sorted(levels.tolist())[:4]


def test_selection_keeps_each_images_best_crop():
    """Within one image the crop the teacher likes best is the one kept."""
    img = torch.zeros(1, 1, 16, 16)
    img[..., :8] = 1.0  # bright left half: crops there score best for class 1
    patches, loss, _ = select_patches(img, 1, brightness_teacher, 1, 20, torch.Generator().manual_seed(0), (0.1, 0.3))
    assert patches.mean() > 0.8


def test_stitching_layout_is_row_major():
    f, m = 2, 3
    patches = torch.arange(m * f * f, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).clone()
    out = stitch(patches, f)
    assert out.shape == (m, 1, 8, 8)
    for k in range(m):
        grid = [[out[k, 0, 0, 0], out[k, 0, 0, 4]], [out[k, 0, 4, 0], out[k, 0, 4, 4]]]
        assert [[float(v) for v in row] for row in grid] == [[k * 4.0, k * 4 + 1.0], [k * 4 + 2.0, k * 4 + 3.0]]
    assert torch.equal(stitch(patches, 1), patches)


def test_too_few_candidates_is_a_clear_error():
    with pytest.raises(ConfigError, match="raise candidates"):
        select_patches(torch.zeros(3, 1, 8, 8), 0, brightness_teacher, 4, 1, torch.Generator(), (0.5, 1.0))


def test_rded_set_is_real_crops_and_names_its_teacher(registry, digits, tmp_path, one_thread):
    syn = api.distill(
        registry,
        "rded",
        digits,
        2,
        preset="smoke",
        overrides={"factor": 2},
        cache_dir=tmp_path,
        model="convnet_w32",
        progress=False,
    )
    assert syn.images.shape == (20, *digits.train_x.shape[1:]) and syn.factor == 1  # stitched images are stored whole
    assert syn.metadata["teacher"]["recipe"]["model"] == "convnet_w32_bn"
    assert len(syn.metadata["source_train_indices"]) == 20 * 4
