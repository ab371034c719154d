"""What the DC and DSA papers report (test accuracy %, ConvNet-3, hard labels), for leaderboards.

Read from the authors' repository (VICO-UoE/DatasetCondensation), whose README repeats the
papers' main tables without their standard deviations; the papers' own tables were not in
reach when these were entered, so ``std`` is None and ``where`` names the README.
"""

from dd_bench.plugin import ReportedResult

DATASETS = ("mnist", "fashion_mnist", "svhn", "cifar10")

DC = ReportedResult.table(
    "Zhao et al. 2021 (DC), Table 1 as the authors' README gives it",
    "convnet",
    {
        (ds, ipc): (acc, None)
        for ds, row in zip(DATASETS, ((91.7, 97.4, 98.8), (70.5, 82.3, 83.6), (31.2, 76.1, 82.3), (28.3, 44.9, 53.9)))
        for ipc, acc in zip((1, 10, 50), row)
    },
)

DSA = ReportedResult.table(
    "Zhao & Bilen 2021 (DSA), the authors' README's DSA table",
    "convnet",
    {
        **{
            (ds, ipc): (acc, None)
            for ds, row in zip(
                DATASETS, ((88.7, 97.8, 99.2), (70.6, 84.6, 88.7), (27.5, 79.2, 84.4), (28.8, 52.1, 60.6))
            )
            for ipc, acc in zip((1, 10, 50), row)
        },
        ("cifar100", 1): (13.9, None),
        ("cifar100", 10): (32.3, None),
    },
)
