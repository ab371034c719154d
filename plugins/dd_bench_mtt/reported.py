"""What the MTT paper (Cazenavette et al. 2022, CVPR) reports: test accuracy %, hard labels and
the learned lr, mean ± std over five networks.

The paper's own tables were not in reach when these were entered: the figures are as Yuan et
al. 2024 (AutoPalette, NeurIPS) quote them in their Tables 1 and 2; the ImageNet subsets at
IPC 10 agree with the MTT row Du et al. 2023 (FTD) cite in their Table 2.
"""

from dd_bench.plugin import ReportedResult

MTT = ReportedResult.table(
    "Cazenavette et al. 2022 (MTT) as quoted in Yuan et al. 2024 (AutoPalette), Table 1",
    "convnet",
    {
        ("cifar10", 1): (46.3, 0.8),
        ("cifar10", 10): (65.3, 0.7),
        ("cifar10", 50): (71.6, 0.2),
        ("cifar100", 1): (24.3, 0.3),
        ("cifar100", 10): (40.1, 0.4),
        ("cifar100", 50): (47.7, 0.2),
    },
) + ReportedResult.table(
    "Cazenavette et al. 2022 (MTT) as quoted in Yuan et al. 2024 (AutoPalette), Table 2",
    "convnet_d5",
    {
        ("imagenette_mtt", 10): (63.0, 1.3),
        ("imagewoof_mtt", 10): (35.8, 1.8),
        ("imagefruit", 10): (40.3, 1.3),
        ("imagemeow", 10): (40.4, 2.2),
        ("imagesquawk", 10): (52.3, 1.0),
        ("imageyellow", 10): (60.0, 1.5),
    },
    note="128 px subsets of ImageNet-1K, depth-5 ConvNet",
)
