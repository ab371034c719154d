"""What the RDED paper (Sun et al. 2024, CVPR) reports: test accuracy %, students trained on the
observer's soft labels of every batch."""

from dd_bench.plugin import ReportedResult

RDED = (
    ReportedResult(
        "imagenet1k",
        10,
        "tv:resnet18",
        42.0,
        None,
        "Sun et al. 2024 (RDED), abstract",
        labels="teacher",
        note="the abstract's rounded '42%'; the paper's tables were not in reach when this was entered",
    ),
)
