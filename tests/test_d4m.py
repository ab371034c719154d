"""D4M: OQ's decoded k-means centroids with unit weights, as its own row."""

from __future__ import annotations

import pytest
import torch

from dd_bench import api
from dd_bench.errors import ConfigError


def test_d4m_is_oq_without_cell_weights(registry, digits, tmp_path):
    kw = dict(preset="smoke", cache_dir=tmp_path, model="convnet_w32", progress=False)
    oq = api.distill(registry, "oq", digits, 2, **kw)
    d4m = api.distill(registry, "d4m", digits, 2, **kw)
    assert torch.equal(oq.images, d4m.images)  # the same decoded centroids
    assert oq.weights is not None and d4m.weights is None and d4m.method == "d4m"
    assert d4m.metadata["cell_masses"] == oq.weights.tolist()


@pytest.mark.parametrize(
    "override,why", [({"medoid": True}, "decodes its k-means centroids"), ({"labels": "teacher"}, "teacher protocol")]
)
def test_d4m_refuses_what_d4m_is_not(registry, override, why):
    with pytest.raises(ConfigError, match=why):
        api.resolve_config(registry, "d4m", "smoke", override)
