"""What the SRe2L paper (Yin et al. 2023, NeurIPS) reports: test accuracy %, students trained on
the teacher's soft labels of every batch (relabelling)."""

from dd_bench.plugin import ReportedResult

SRE2L = tuple(
    ReportedResult(
        "imagenet1k",
        10,
        model,
        acc,
        None,
        "Yin et al. 2023 (SRe2L) as quoted in Su et al. 2024 (D4M), Table 2",
        labels="teacher",
        note="relabelled by a ResNet-18; the SRe2L paper's tables were not in reach when these were entered",
    )
    for model, acc in (("tv:resnet18", 21.3), ("tv:resnet50", 28.4), ("tv:resnet101", 30.9))
)
