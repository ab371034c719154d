"""What the DATM paper (Guo et al. 2024, ICLR) reports: test accuracy %, the set's learned soft
labels and lr, mean ± std over five networks.

The paper's own tables were not in reach when these were entered: the figures are as Yuan et
al. 2024 (AutoPalette, NeurIPS) quote them in their Table 1.
"""

from dd_bench.plugin import ReportedResult

DATM = ReportedResult.table(
    "Guo et al. 2024 (DATM) as quoted in Yuan et al. 2024 (AutoPalette), Table 1",
    "convnet",
    {
        ("cifar10", 1): (46.9, 0.5),
        ("cifar10", 10): (66.8, 0.2),
        ("cifar10", 50): (76.1, 0.3),
        ("cifar100", 1): (27.9, 0.2),
        ("cifar100", 10): (47.2, 0.4),
        ("cifar100", 50): (55.0, 0.2),
    },
)
