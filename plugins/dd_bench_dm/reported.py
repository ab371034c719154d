"""What the DM paper reports (test accuracy %, ConvNet-3, hard labels), for leaderboards.

IPC 1-50 as Du et al. 2023 (FTD) cite them in their Table 1 (from Cazenavette et al. 2022);
the large IPCs from the authors' README (VICO-UoE/DatasetCondensation). The paper's own
tables were not in reach when these were entered. IDM's and M3D's papers were not either:
those methods declare no figures yet.
"""

from dd_bench.plugin import ReportedResult

DM = ReportedResult.table(
    "Zhao & Bilen 2023 (DM) as cited in Du et al. 2023 (FTD), Table 1",
    "convnet",
    {
        ("cifar10", 1): (26.0, 0.8),
        ("cifar10", 10): (48.9, 0.6),
        ("cifar10", 50): (63.0, 0.4),
        ("cifar100", 1): (11.4, 0.3),
        ("cifar100", 10): (29.7, 0.3),
        ("cifar100", 50): (43.6, 0.4),
    },
) + ReportedResult.table(
    "Zhao & Bilen 2023 (DM), large synthetic sets (the authors' README, under its Figure 8)",
    "convnet",
    {
        ("cifar10", 100): (67.0, 0.3),
        ("cifar10", 200): (71.2, 0.4),
        ("cifar10", 500): (76.1, 0.3),
        ("cifar10", 1000): (79.8, 0.3),
        ("cifar10", 1250): (80.8, 0.3),
    },
)
