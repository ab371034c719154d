"""The plugin surface: the one module a dd-bench plugin imports.

Everything in ``__all__`` is the contract between dd-bench and its plugins, and stays
importable from here across releases; anything else in ``dd_bench`` is internal and may move.
A plugin implements the hooks of ``dd_bench.hookspecs`` (marked with ``hookimpl``) and
builds on these pieces:

- **Specs** it returns from its hooks: ``DatasetSpec``, ``ModelSpec``, ``DistillerSpec``,
  ``OptimizerSpec``, ``ReportedResult``, ``Sharding``/``PER_CLASS``; the request a method gets
  (``DistillRequest``, with ``request.data``, ``request.generator()``, ``request.teacher``...)
  and the set it returns (``SyntheticSet``, ``pack``/``expand`` for multi-formation sets).
- **Data access**: ``RealData``, ``DataRequest``, ``DataShape``; ``StreamedImages``/``Images``
  for data that does not fit in memory, iterated with ``batches`` and indexed with
  ``select`` (``normalise`` turns uint8 rows into the dataset's space);
  ``split_train_val``/``train_val_positions`` for a dataset's validation split;
  ``image_files``/``decoded`` to decode image folders once into the cache.
- **File formats** a method's published code saves, read and written by its plugin
  (``ddb_register_formats``): ``FormatSpec`` (a name, ``read(path, request)``, optionally
  ``write(set, out)``), the ``ReadRequest`` a reader gets and the ``FormatRead`` it returns;
  ``torch_load`` loads a file safely (one line for a bad one), ``read_iteration_set`` reads a
  set saved by iteration (MTT's ``images_best.pt``, ``labels_best.pt``, ``lr_best.pt``), and
  ``REFERENCE_NORMALIZATION``/``to_reference_normalization`` give the reference code's mean/std.
- **Augmentation**: ``random_resized_crop`` (SRe2L/RDED's crops; DSA is configured through
  the engines' ``dsa`` settings).
- **The trained-network caches**: teachers (``TeacherSettings``, ``CPU_TEACHER``) and expert
  trajectories (``ExpertRecipe``, ``ensure_buffers``, ``data_fingerprint``).
- **The two engines**: trajectory matching (``MatchingConfig``, ``TrajectoryMatcher``, whose
  policy hooks a method overrides; ``FlatModel``, the functional student) and fresh-network
  matching (``FreshConfig``, ``FreshMatcher``, ``Embedder``, ``penultimate``, ``has_batchnorm``).
- **Run-time services**: ``default_cache_dir``, ``cache_lock``, ``seeded_build``,
  ``downloads_allowed``, ``atomic_torch_save``, ``CACHE_BUILD_SECONDS``.
- **Errors** that become one line and exit 2: ``ConfigError`` (a bad setting), ``DataError``
  (bad or missing data), ``UnknownNameError``, ``DDBenchError``; ``require_ints`` checks counts.

``tests/test_layers.py`` holds the built-in plugins to this surface.
"""

from . import hookimpl
from .augment import random_resized_crop
from .errors import ConfigError, DataError, DDBenchError, UnknownNameError, require_ints
from .formats import (
    REFERENCE_NORMALIZATION,
    FormatRead,
    FormatSpec,
    ReadRequest,
    read_iteration_set,
    to_reference_normalization,
    torch_load,
)
from .fresh import Embedder, FreshConfig, FreshMatcher, has_batchnorm, penultimate
from .images import decoded, image_files
from .matching import FlatModel, MatchingConfig, TrajectoryMatcher
from .matching.buffers import ExpertRecipe, data_fingerprint, ensure_buffers
from .runtime import cache_lock, default_cache_dir, downloads_allowed, seeded_build
from .specs import (
    PER_CLASS,
    DataRequest,
    DatasetSpec,
    DataShape,
    DistillerSpec,
    DistillRequest,
    ModelSpec,
    OptimizerSpec,
    RealData,
    ReportedResult,
    Sharding,
    split_train_val,
    train_val_positions,
)
from .streaming import Images, StreamedImages, batches, normalise, select
from .synthetic import CACHE_BUILD_SECONDS, SyntheticSet, atomic_torch_save, expand, pack
from .teachers import CPU_TEACHER, TeacherSettings

__all__ = [
    "CACHE_BUILD_SECONDS",
    "CPU_TEACHER",
    "PER_CLASS",
    "REFERENCE_NORMALIZATION",
    "ConfigError",
    "DDBenchError",
    "DataError",
    "DataRequest",
    "DataShape",
    "DatasetSpec",
    "DistillRequest",
    "DistillerSpec",
    "Embedder",
    "ExpertRecipe",
    "FlatModel",
    "FormatRead",
    "FormatSpec",
    "FreshConfig",
    "FreshMatcher",
    "Images",
    "MatchingConfig",
    "ModelSpec",
    "OptimizerSpec",
    "ReadRequest",
    "RealData",
    "ReportedResult",
    "Sharding",
    "StreamedImages",
    "SyntheticSet",
    "TeacherSettings",
    "TrajectoryMatcher",
    "UnknownNameError",
    "atomic_torch_save",
    "batches",
    "cache_lock",
    "data_fingerprint",
    "decoded",
    "default_cache_dir",
    "downloads_allowed",
    "ensure_buffers",
    "expand",
    "has_batchnorm",
    "hookimpl",
    "image_files",
    "normalise",
    "pack",
    "penultimate",
    "random_resized_crop",
    "read_iteration_set",
    "require_ints",
    "seeded_build",
    "select",
    "split_train_val",
    "to_reference_normalization",
    "torch_load",
    "train_val_positions",
]
