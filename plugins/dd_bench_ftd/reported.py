"""What the FTD paper (Du et al. 2023, CVPR) reports: test accuracy %, hard labels and the
learned lr, five networks per set, mean ± std; read from the paper's text."""

from dd_bench.plugin import ReportedResult

FTD = (
    ReportedResult.table(
        "Du et al. 2023 (FTD), Table 1",
        "convnet",
        {
            ("cifar10", 1): (46.8, 0.3),
            ("cifar10", 10): (66.6, 0.3),
            ("cifar10", 50): (73.8, 0.2),
            ("cifar100", 1): (25.2, 0.2),
            ("cifar100", 10): (43.4, 0.3),
            ("cifar100", 50): (50.7, 0.3),
        },
        note="Table 4 gives 43.2 ± 0.3 for CIFAR-100 IPC 10",
    )
    + ReportedResult.table(
        "Du et al. 2023 (FTD), Table 1",
        "convnet_d4",
        {("tiny_imagenet", 1): (10.4, 0.3), ("tiny_imagenet", 10): (24.5, 0.2)},
        note="depth-4 ConvNet; Table 4 gives 10.0 ± 0.2 for IPC 1",
    )
    + (
        ReportedResult(
            "cifar10",
            50,
            "resnet18_in",
            65.7,
            0.3,
            "Du et al. 2023 (FTD), Table 3 (cross-architecture)",
            note="the paper's ResNet18, which the MTT/FTD code builds with instance norm",
        ),
        ReportedResult("cifar10", 50, "alexnet", 53.8, 0.9, "Du et al. 2023 (FTD), Table 3 (cross-architecture)"),
    )
)
