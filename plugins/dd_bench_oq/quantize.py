"""Optimal quantization of point clouds: k-means++ / Lloyd, mini-batch CLVQ, and the error.

Everything here works on ``[n, d]`` float tensors on any device. Distances are computed in
row chunks with the ``||x||^2 - 2 x.c + ||c||^2`` expansion (one matmul per chunk, no Python
loop over samples); the squared distance of a point to the centroid it was assigned to is
then recomputed exactly as ``||x - c||^2``, so the reported objective does not suffer from
the cancellation error of the expansion. Every random draw comes from a CPU
``torch.Generator`` passed in by the caller.

The objective of optimal quantization of an empirical measure ``mu = 1/n sum delta_x_i`` by
``K`` points ``c_k`` is the distortion ``D(c) = 1/n sum_i min_k ||x_i - c_k||^2``. Giving each
``c_k`` the mass of its Voronoi cell (the share of points nearest to it) makes ``D(c)``
exactly the squared Wasserstein-2 distance between ``mu`` and ``sum_k w_k delta_c_k``: the
nearest-point map is then an optimal transport plan (no plan moves a point to a closer code
point). Lloyd's iterations never increase ``D``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

DEFAULT_CHUNK = 4096


def _chunk_rows(n_codes: int, chunk: int | None) -> int:
    """Rows per chunk so that a chunk's distance block stays around 2**24 floats."""
    if chunk is not None:
        return max(1, int(chunk))
    return max(256, min(65536, (1 << 24) // max(1, n_codes)))


def sq_distances(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``[n, k]`` squared Euclidean distances by the matmul expansion (clamped at 0)."""
    x2 = (x * x).sum(1, keepdim=True)
    c2 = (codes * codes).sum(1).unsqueeze(0)
    return (x2 - 2.0 * (x @ codes.T) + c2).clamp_min_(0.0)


def assign(x: torch.Tensor, codes: torch.Tensor, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest code point of every row of ``x``: ``(index [n] long, exact squared distance [n])``."""
    if x.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device), torch.zeros(0, dtype=x.dtype, device=x.device)
    rows = _chunk_rows(codes.shape[0], chunk)
    index, dist = [], []
    for start in range(0, x.shape[0], rows):
        xb = x[start : start + rows]
        a = sq_distances(xb, codes).argmin(1)
        index.append(a)
        dist.append(((xb - codes[a]) ** 2).sum(1))
    return torch.cat(index), torch.cat(dist)


def cell_masses(index: torch.Tensor, k: int) -> torch.Tensor:
    """Share of the points in each of the ``k`` cells (sums to 1; float64 counts / n)."""
    counts = torch.bincount(index, minlength=k).to(torch.float64)
    return counts / counts.sum().clamp_min(1.0)


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator, chunk: int | None = None) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007): a loop over the ``k`` seeds, not the points.

    The first seed is uniform; each next one is drawn with probability proportional to the
    squared distance to the nearest seed so far (a uniform draw from ``generator`` inverted
    through the cumulative distribution, so it is the same on every device).
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} centroids need 1 <= k <= n={n} points")
    first = int(torch.randint(n, (1,), generator=generator))
    codes = [x[first]]
    _, nearest = assign(x, x[first : first + 1], chunk)
    for _ in range(1, k):
        u = float(torch.rand((), generator=generator, dtype=torch.float64))
        cdf = nearest.to(torch.float64).cumsum(0)
        total = float(cdf[-1])
        if total <= 0.0:  # every point coincides with a seed already: take the first unused index
            pick = len(codes) % n
        else:
            pick = int(
                torch.searchsorted(cdf, torch.tensor([u * total], dtype=torch.float64, device=cdf.device)).clamp_max(
                    n - 1
                )
            )
        codes.append(x[pick])
        _, d = assign(x, x[pick : pick + 1], chunk)
        nearest = torch.minimum(nearest, d)
    return torch.stack(codes).clone()


@dataclass
class Quantization:
    """A codebook for one point cloud: codes ``[k, d]``, masses ``[k]`` (sum 1), the assignment and error.

    ``history`` is the objective after each assignment step (Lloyd: non-increasing).
    """

    codes: torch.Tensor
    masses: torch.Tensor
    index: torch.Tensor
    error: float
    iterations: int
    history: list[float] = field(default_factory=list)


def _update_means(x: torch.Tensor, index: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell means (a scatter-add, no loop over points); empty cells keep their old code."""
    k = codes.shape[0]
    sums = torch.zeros_like(codes).index_add_(0, index, x)
    counts = torch.bincount(index, minlength=k)
    new = torch.where((counts > 0).unsqueeze(1), sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype), codes)
    return new, counts


def _reseed_empty(
    x: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor, index: torch.Tensor, rows: int = 4096
) -> torch.Tensor:
    """Move each empty cell's code onto the point that is worst served by the current assignment
    at the new ``codes`` (this only lowers the error); distances only when a cell is empty, in chunks."""
    empty = torch.nonzero(counts == 0, as_tuple=True)[0]
    if empty.numel() == 0:
        return codes
    dist = torch.cat([((x[s : s + rows] - codes[index[s : s + rows]]) ** 2).sum(1) for s in range(0, x.shape[0], rows)])
    codes = codes.clone()
    far = dist.argsort(descending=True)[: empty.numel()]
    codes[empty] = x[far]
    return codes


def lloyd(
    x: torch.Tensor,
    k: int,
    generator: torch.Generator,
    iterations: int = 100,
    tol: float = 1e-6,
    restarts: int = 1,
    chunk: int | None = None,
    init: torch.Tensor | None = None,
) -> Quantization:
    """k-means by Lloyd's algorithm from k-means++ seeds; the best of ``restarts`` runs.

    Stops when the relative decrease of the objective falls below ``tol`` or after
    ``iterations`` update steps. ``init`` replaces the k-means++ seeds (one run).
    """
    best: Quantization | None = None
    for _ in range(1 if init is not None else max(1, restarts)):
        codes = init.to(x.device, x.dtype).clone() if init is not None else kmeans_plus_plus(x, k, generator, chunk)
        index, dist = assign(x, codes, chunk)
        history = [float(dist.to(torch.float64).mean())]
        done = 0
        for _step in range(iterations):
            new, counts = _update_means(x, index, codes)
            # the error of the current assignment at the new means: never above the old one
            new = _reseed_empty(x, new, counts, index)
            new_index, new_dist = assign(x, new, chunk)
            value = float(new_dist.to(torch.float64).mean())
            done += 1
            previous = history[-1]
            codes, index, dist = new, new_index, new_dist
            history.append(value)
            if previous - value <= tol * max(previous, 1e-30):
                break
        result = Quantization(codes, cell_masses(index, k), index, history[-1], done, history)
        if best is None or result.error < best.error:
            best = result
    assert best is not None
    return best


def clvq(
    x: torch.Tensor,
    k: int,
    generator: torch.Generator,
    iterations: int = 1000,
    batch_size: int = 1024,
    chunk: int | None = None,
    init: torch.Tensor | None = None,
) -> Quantization:
    """Mini-batch competitive learning vector quantization (Sculley's mini-batch k-means).

    Each step draws ``batch_size`` points (with replacement, from ``generator``), assigns them,
    and moves every code towards the mean of its batch points with step
    ``batch_count / running_count``: the stochastic-gradient form of Lloyd's fixed point. The
    masses and error of the returned codebook come from one final full assignment.
    """
    n = x.shape[0]
    codes = init.to(x.device, x.dtype).clone() if init is not None else kmeans_plus_plus(x, k, generator, chunk)
    running = torch.zeros(k, dtype=torch.float64, device=x.device)
    history = []
    for _ in range(iterations):
        pick = torch.randint(n, (min(batch_size, n),), generator=generator).to(x.device)
        xb = x[pick]
        a, d = assign(xb, codes, chunk)
        history.append(float(d.to(torch.float64).mean()))
        sums = torch.zeros_like(codes).index_add_(0, a, xb)
        counts = torch.bincount(a, minlength=k).to(torch.float64)
        running += counts
        hit = counts > 0
        step = (counts / running.clamp_min(1.0)).to(x.dtype).unsqueeze(1)
        means = sums / counts.clamp_min(1.0).to(x.dtype).unsqueeze(1)
        codes = torch.where(hit.unsqueeze(1), codes + step * (means - codes), codes)
    index, dist = assign(x, codes, chunk)
    return Quantization(codes, cell_masses(index, k), index, float(dist.to(torch.float64).mean()), iterations, history)


def quantization_error(
    points: torch.Tensor,
    codes: torch.Tensor,
    point_labels: torch.Tensor | None = None,
    code_labels: torch.Tensor | None = None,
    chunk: int | None = None,
) -> dict[str, object]:
    """The optimal-quantization objective of ``codes`` for ``points``, per class and overall.

    Each point goes to its nearest code point *of its own class* (all points are one class
    when labels are omitted). Per class ``c`` the figure is ``D_c = mean_i ||x_i - q(x_i)||^2``,
    the squared Wasserstein-2 distance between the class's empirical distribution and the
    code points carrying their cell masses (the best weights those points can have). The
    overall figure averages ``D_c`` with the class priors ``n_c / n``, i.e. it is the mean over
    all points. Use it for any set of points: OQ centroids, medoids or a random subset.

    Returns ``{"error": float, "per_class": [float], "masses": tensor [len(codes)]}`` where
    ``masses`` are the cell shares of all points (summing to 1 over all codes).
    """
    points = points.reshape(points.shape[0], -1)
    codes = codes.reshape(codes.shape[0], -1).to(points.device, points.dtype)
    if point_labels is None:
        point_labels = torch.zeros(points.shape[0], dtype=torch.long)
        code_labels = torch.zeros(codes.shape[0], dtype=torch.long)
    if code_labels is None:
        raise ValueError("code_labels are needed when point_labels are given")
    point_labels, code_labels = point_labels.to(points.device), code_labels.to(points.device)
    total, n = 0.0, points.shape[0]
    masses = torch.zeros(codes.shape[0], dtype=torch.float64, device=points.device)
    per_class = []
    for c in torch.unique(point_labels).tolist():
        rows = torch.nonzero(point_labels == c, as_tuple=True)[0]
        cols = torch.nonzero(code_labels == c, as_tuple=True)[0]
        if cols.numel() == 0:
            raise ValueError(f"class {c} has points but no code points")
        index, dist = assign(points[rows], codes[cols], chunk)
        d = float(dist.to(torch.float64).sum())
        total += d
        per_class.append(d / max(1, rows.numel()))
        masses.index_add_(0, cols[index], torch.ones(rows.numel(), dtype=torch.float64, device=points.device))
    return {"error": total / max(1, n), "per_class": per_class, "masses": (masses / max(1, n)).cpu()}


def nearest_points(x: torch.Tensor, codes: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """For each code point, the index of its nearest row of ``x`` (medoid selection)."""
    rows = _chunk_rows(x.shape[0], chunk)
    best_d = torch.full((codes.shape[0],), math.inf, dtype=x.dtype, device=x.device)
    best_i = torch.zeros(codes.shape[0], dtype=torch.long, device=x.device)
    for start in range(0, codes.shape[0], rows):
        cb = codes[start : start + rows]
        d = sq_distances(cb, x)
        best_d[start : start + rows], best_i[start : start + rows] = d.min(1)
    return best_i
