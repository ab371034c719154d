"""What the D4M paper (Su et al. 2024, CVPR) reports: test accuracy %, students trained on the
teacher's soft labels of every batch (the paper's training-time matching; teacher ResNet-18
for ImageNet-1K). Only the cells its converted text shows unambiguously: Table 1, and those
of the garbled Table 2 that Tables 3 and 5 or the text repeat. The optimal-quantization
paper's figures were not in reach when these were entered: ``oq`` declares none yet."""

from dd_bench.plugin import ReportedResult

D4M = ReportedResult.table(
    "Su et al. 2024 (D4M), Table 1",
    "convnet",
    labels="teacher",
    figures={
        ("cifar10", 10): (56.2, 0.4),
        ("cifar10", 50): (72.8, 0.5),
        ("cifar100", 10): (45.0, 0.1),
        ("cifar100", 50): (48.8, 0.3),
    },
    note="the paper's ConvNet-W128 (Gidaris & Komodakis), five networks",
) + (
    ReportedResult("imagenet1k", 10, "tv:resnet18", 27.9, None, "Su et al. 2024 (D4M), Tables 2-4", labels="teacher"),
    ReportedResult("imagenet1k", 10, "tv:resnet50", 33.5, None, "Su et al. 2024 (D4M), Tables 2-4", labels="teacher"),
    ReportedResult("imagenet1k", 10, "tv:resnet101", 34.2, None, "Su et al. 2024 (D4M), Tables 2-4", labels="teacher"),
    ReportedResult(
        "imagenet1k", 50, "tv:resnet18", 55.2, None, "Su et al. 2024 (D4M), Tables 2 and 5", labels="teacher"
    ),
    ReportedResult("imagenet1k", 50, "tv:mobilenet_v2", 47.9, None, "Su et al. 2024 (D4M), Table 5", labels="teacher"),
    ReportedResult(
        "imagenet1k",
        50,
        "timm:efficientnet_b0",
        55.4,
        None,
        "Su et al. 2024 (D4M), Table 5",
        labels="teacher",
        note="the paper's EfficientNet-B0",
    ),
    ReportedResult(
        "imagenet1k", 100, "tv:resnet101", 66.5, None, "Su et al. 2024 (D4M), Table 2 and Section 4.2", labels="teacher"
    ),
)
