from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from dd_bench.errors import ConfigError, DataError
from dd_bench.zca import ZCA

SHAPE = (2, 4, 4)  # D = 32


def data(n: int = 400, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Strongly correlated, off-centre images: a few latent factors plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    d = int(np.prod(SHAPE))
    latent = torch.randn(n, 6, generator=g, dtype=torch.float64)
    mix = torch.randn(6, d, generator=g, dtype=torch.float64)
    x = latent @ mix + 0.2 * torch.randn(n, d, generator=g, dtype=torch.float64) + 0.7
    return x.view(n, *SHAPE).to(dtype)


def numpy_zca(x: torch.Tensor, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kornia/MTT recipe, written directly in numpy (float64)."""
    flat = x.reshape(len(x), -1).double().numpy()
    mean = flat.mean(0)
    cov = np.cov(flat, rowvar=False)  # unbiased, N - 1
    s, u = np.linalg.eigh(cov)
    t = u @ np.diag(1 / np.sqrt(s + eps)) @ u.T
    return (flat - mean) @ t, cov, t


@pytest.fixture(scope="module")
def fitted() -> tuple[torch.Tensor, ZCA]:
    x = data()
    return x, ZCA.fit(x, eps=0.1)


def test_matches_a_direct_numpy_computation(fitted):
    x, zca = fitted
    expected, cov, t = numpy_zca(x, 0.1)
    np.testing.assert_allclose(zca.transform_matrix.numpy(), t, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(zca.transform(x).reshape(len(x), -1).numpy(), expected, rtol=1e-4, atol=1e-4)
    # the whitened covariance is T cov T = U diag(S / (S + eps)) U^T: identity-like, shrunk by eps
    white = zca.transform(x).reshape(len(x), -1).double().numpy()
    s, u = np.linalg.eigh(cov)
    np.testing.assert_allclose(np.cov(white, rowvar=False), u @ np.diag(s / (s + 0.1)) @ u.T, atol=1e-4)
    np.testing.assert_allclose(white.mean(0), 0, atol=1e-5)


def test_small_eps_whitens_to_the_identity():
    x = data()
    white = ZCA.fit(x, eps=1e-6).transform(x).reshape(len(x), -1).double()
    cov = torch.cov(white.T)
    torch.testing.assert_close(cov, torch.eye(cov.shape[0], dtype=torch.float64), rtol=0, atol=1e-3)


def test_unbiased_false_divides_by_n():
    x = data(n=50)
    flat = x.reshape(50, -1).double()
    biased = ZCA.fit(x, eps=0.1, unbiased=False)
    torch.testing.assert_close(biased.eigenvalues.sum(), torch.cov(flat.T, correction=0).trace())
    torch.testing.assert_close(ZCA.fit(x, eps=0.1).eigenvalues.sum(), torch.cov(flat.T).trace())


def test_inverse_undoes_transform(fitted):
    x, zca = fitted
    torch.testing.assert_close(zca.inverse(zca.transform(x)), x, rtol=1e-4, atol=1e-4)
    other = data(n=20, seed=3)  # also for data it was not fitted on
    torch.testing.assert_close(zca.inverse(zca.transform(other)), other, rtol=1e-4, atol=1e-4)
    eye = zca.transform_matrix.double() @ zca.inverse_matrix.double()
    torch.testing.assert_close(eye, torch.eye(zca.dim, dtype=torch.float64), rtol=0, atol=1e-5)


def test_state_round_trip_is_exact(fitted):
    x, zca = fitted
    buffer = io.BytesIO()
    torch.save(zca.state_dict(), buffer)
    buffer.seek(0)
    loaded = ZCA.from_state_dict(torch.load(buffer, weights_only=True))
    assert (loaded.image_shape, loaded.eps, loaded.num_samples) == (SHAPE, 0.1, 400)
    assert torch.equal(loaded.transform(x), zca.transform(x))
    assert torch.equal(loaded.inverse(x), zca.inverse(x))
    assert repr(loaded) == repr(zca) == "ZCA(image_shape=[2, 4, 4], eps=0.1, num_samples=400)"


def test_fitting_is_deterministic_and_chunking_does_not_matter(fitted):
    x, zca = fitted
    again = ZCA.fit(x, eps=0.1)
    assert torch.equal(again.transform_matrix, zca.transform_matrix)
    assert torch.equal(again.mean, zca.mean)
    chunked = ZCA.fit(x, eps=0.1, chunk_size=7)
    torch.testing.assert_close(chunked.transform_matrix, zca.transform_matrix, rtol=1e-6, atol=1e-6)


def test_transform_is_differentiable_and_keeps_dtype(fitted):
    x, zca = fitted
    x = x[:5].clone().requires_grad_()
    zca.transform(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    y = zca.inverse(zca.transform(x.detach().double()))
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, x.detach().double(), rtol=1e-4, atol=1e-4)


def test_errors_name_the_problem(fitted):
    _, zca = fitted
    with pytest.raises(ConfigError, match="eps"):
        ZCA.fit(data(), eps=-0.1)
    with pytest.raises(DataError, match=r"\[N,C,H,W\]"):
        ZCA.fit(torch.zeros(10, 32))
    with pytest.raises(DataError, match="at least 2"):
        ZCA.fit(torch.zeros(1, *SHAPE))
    with pytest.raises(DataError, match=r"\[2, 4, 4\]"):
        zca.transform(torch.zeros(3, 1, 4, 4))
    with pytest.raises(DataError, match="singular"):
        ZCA.fit(torch.zeros(4, *SHAPE), eps=0.0)
    with pytest.raises(DataError, match="format"):
        ZCA.from_state_dict({"format": "something-else"})
    state = zca.state_dict()
    with pytest.raises(DataError, match="format_version"):
        ZCA.from_state_dict({**state, "format_version": 99})
    with pytest.raises(DataError, match="does not fit"):
        ZCA.from_state_dict({**state, "image_shape": [1, 4, 4]})
    del state["mean"]
    with pytest.raises(DataError, match="incomplete"):
        ZCA.from_state_dict(state)


@pytest.mark.cuda
def test_cuda_fit_and_transform_agree_with_cpu(fitted):
    x, zca = fitted
    on_gpu = ZCA.fit(x.cuda(), eps=0.1)
    torch.testing.assert_close(on_gpu.transform(x.cuda()).cpu(), zca.transform(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(zca.transform(x.cuda()).cpu(), zca.transform(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(zca.to("cuda").inverse(x.cuda()).cpu(), zca.inverse(x), rtol=1e-5, atol=1e-5)


def test_fitted_once_per_dataset_in_a_process_and_across_processes(registry, digits, tmp_path, monkeypatch):
    """The engine, the evaluation and the buffer command share one fit per dataset."""
    from dd_bench import api
    from dd_bench import zca as zca_module
    from dd_bench.evaluate import eval_splits

    fits = []
    real_fit = ZCA.fit.__func__
    monkeypatch.setattr(ZCA, "fit", classmethod(lambda cls, *a, **k: fits.append(1) or real_fit(cls, *a, **k)))
    monkeypatch.setattr(zca_module, "_FITTED", {})
    first = zca_module.fitted_zca(digits, "cpu", tmp_path)
    assert zca_module.fitted_zca(digits, "cpu", tmp_path) is first and len(fits) == 1
    zca_module._FITTED.clear()  # another process: reads the disk cache, fits nothing
    again = zca_module.fitted_zca(digits, "cpu", tmp_path)
    assert len(fits) == 1 and torch.equal(again.transform_matrix, first.transform_matrix)

    zca_module._FITTED.clear()
    syn = api.distill(
        registry,
        "mtt",
        digits,
        ipc=1,
        preset="smoke",
        overrides={"zca": True},
        model="convnet_w32",
        cache_dir=tmp_path / "other",
        progress=False,
    )
    eval_splits(syn, digits)
    assert len(fits) == 2  # one more: the distillation's; the evaluation reused it
