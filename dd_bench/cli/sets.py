"""``dd-bench distill``, ``import``, ``export`` and ``buffer``: commands that write a set or a cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..limits import MAX_SEED
from .options import (
    check_file_to_write,
    check_folder,
    check_parents,
    data_options,
    int_from,
    key_value,
    load_registry,
    positive_float,
    resolve_device,
)


def cmd_distill(args: argparse.Namespace) -> int:
    from .. import api
    from ..shards import check_count

    registry = load_registry()
    api.resolve_config(
        registry, args.method, args.preset, dict(args.set or [])
    )  # typos and bad values fail before any data loads
    check_count(registry.distiller(args.method), args.shards)
    registry.dataset(args.dataset)
    registry.model(args.model)
    check_file_to_write(args.out, "--out")
    check_file_to_write(args.grid, "--grid")
    check_folder(args.cache_dir, "--cache-dir")
    device = resolve_device(args)
    data = api.load_data(registry, args.dataset, args.data_root, args.download, args.resolution)
    shards = f", {args.shards} shards in turn" if args.shards > 1 else ""
    print(
        f"distilling {args.method} on {args.dataset} at ipc {args.ipc} (seed {args.seed}, {device}{shards})",
        file=sys.stderr,
    )
    syn = api.distill(
        registry,
        args.method,
        data,
        args.ipc,
        seed=args.seed,
        preset=args.preset,
        overrides=dict(args.set or []),
        device=device,
        cache_dir=args.cache_dir,
        model=args.model,
        resolution=args.resolution,
        shards=args.shards,
    )
    path = syn.save(args.out)
    print(f"wrote {path} ({len(syn)} images, {syn.nbytes() / 1024:.1f} KiB)", file=sys.stderr)
    if args.grid:
        print(f"wrote {syn.save_grid(args.grid)}", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .. import api
    from ..interchange import format_spec, import_set

    registry = load_registry()
    format_spec(args.format, registry)  # an unknown format fails before any data loads
    check_file_to_write(args.out, "--out")
    data = api.load_data(registry, args.dataset, args.data_root, args.download, args.resolution)
    syn = import_set(
        args.format,
        args.path,
        data,
        args.ipc,
        experiment=args.experiment,
        zca=args.zca,
        normalization=args.normalization,
        lr=args.lr,
        method=args.method,
        registry=registry,
    )
    if args.resolution is not None:
        syn.metadata["resolution"] = args.resolution  # evaluate reads the data at the set's resolution
    path = syn.save(args.out)
    source = syn.metadata["source"]
    print(
        f"wrote {path} ({len(syn)} images of {args.dataset} from {args.format} {args.path}; normalisation"
        f" {source['normalization']}, {'ZCA, ' if syn.zca else ''}{'soft' if syn.soft_labels else 'hard'} labels"
        f"{f', learned lr {syn.lr:g}' if syn.lr is not None else ''})",
        file=sys.stderr,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..interchange import export_set
    from ..synthetic import SyntheticSet

    check_parents(args.out, "--out")
    syn = SyntheticSet.load(args.synthetic)
    print(
        f"wrote {export_set(syn, args.format, args.out, registry=load_registry())} ({args.format}, {len(syn.decoded())} images)",
        file=sys.stderr,
    )
    return 0


def cmd_buffer(args: argparse.Namespace) -> int:
    from .. import api
    from ..matching import ExpertRecipe, ensure_buffers
    from ..runtime import default_cache_dir, seeded_build

    registry = load_registry()
    if args.export is not None and args.export.exists():
        raise ConfigError(f"--export {args.export} exists: give a new folder (an export never replaces anything)")
    registry.dataset(args.dataset)
    model_spec = registry.model(args.model)
    optimizer = registry.optimizer(args.optimizer)
    check_folder(args.cache_dir, "--cache-dir")
    check_folder(args.export, "--export")
    recipe = ExpertRecipe(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        dsa=not args.no_dsa,
        optimizer=args.optimizer,
        optimizer_options=dict(optimizer.defaults) if optimizer else {},
    )
    device = resolve_device(args)
    data = api.load_data(registry, args.dataset, args.data_root, args.download, args.resolution)
    train_x = data.train_x
    if args.zca:
        from ..zca import fitted_zca

        train_x = fitted_zca(data, device, args.cache_dir or default_cache_dir()).transform(data.train_x)
    buffers = ensure_buffers(
        args.model,
        lambda seed: seeded_build(lambda: model_spec.build(data.shape), seed, device),
        data,
        train_x,
        recipe,
        args.experts,
        args.cache_dir or default_cache_dir(),
        device,
        zca=args.zca,
        optimizer_factory=optimizer.build if optimizer else None,
    )
    print(f"{len(buffers.trajectories)} experts x {buffers.epochs} epochs in {buffers.directory}")
    if args.export is not None:
        from ..matching.buffers import export_replay_buffers

        out = export_replay_buffers(buffers, model_spec.build(data.shape), args.export)
        print(f"wrote {out}/replay_buffer_0.pt (MTT's buffer.py layout; distil from it with --set expert_files={out})")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("distill", help="distil a synthetic set and write it to a file")
    p.add_argument("--method", required=True, help="distiller name (see `dd-bench plugins`)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--ipc", type=int_from(1), required=True, help="images per class")
    p.add_argument("--seed", type=int_from(0, MAX_SEED), default=0)
    p.add_argument("--out", type=Path, required=True, help="where to write the synthetic set (.pt)")
    p.add_argument("--preset", help="a named preset of the method")
    p.add_argument(
        "--set", type=key_value, action="append", metavar="KEY=VALUE", help="override one config value (repeatable)"
    )
    p.add_argument("--model", default="convnet", help="distillation architecture (default convnet)")
    p.add_argument(
        "--cache-dir", type=Path, help="cache for expert buffers (default $DD_BENCH_CACHE or ~/.cache/dd-bench)"
    )
    p.add_argument("--grid", type=Path, help="also write a PNG grid of the images here")
    p.add_argument(
        "--shards",
        type=int_from(1),
        default=1,
        metavar="N",
        help="run a method whose classes are independent as N shards in turn, each kept in the cache when done"
        " (the set does not depend on N)",
    )
    data_options(p)
    p.set_defaults(func=cmd_distill)

    from ..interchange import NORMALIZATIONS

    p = sub.add_parser(
        "import", help="turn a published distilled set (DC, MTT, FTD, DATM, image folders, tensors) into a dd-bench set"
    )
    p.add_argument(
        "format",
        help="the format the set was published in: tensors, image-folder, dd-bench, or a method's"
        " (dc, mtt, ftd, datm, ...: `dd-bench plugins` lists every installed one)",
    )
    p.add_argument("path", type=Path, help="the file, or the folder holding the files")
    p.add_argument("--dataset", required=True, help="the dataset it was distilled from")
    p.add_argument("--ipc", type=int_from(1), required=True, help="images per class")
    p.add_argument("--out", type=Path, required=True, help="where to write the dd-bench set (.pt)")
    p.add_argument("--experiment", type=int_from(0), help="dc: which experiment's set (default the last)")
    p.add_argument(
        "--zca", action="store_true", help="the set lives in ZCA space (the test set is whitened the same way)"
    )
    p.add_argument(
        "--normalization",
        help=f"how the images are normalised: {NORMALIZATIONS} (default: the format's; tensors files must say)",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        help="the learned evaluation lr, where the source logged but did not save it (MTT, FTD)",
    )
    p.add_argument("--method", help="the method's name in the set (default: the file's, else the format)")
    data_options(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write a dd-bench set for other tools")
    p.add_argument("synthetic", type=Path, help="a set written by dd-bench")
    p.add_argument(
        "--format",
        required=True,
        help="image-folder (PNG class folders 00000/...), tensors (a .pt of images in [0,1] and labels), mtt"
        " (images_best.pt, labels_best.pt, lr_best.pt), or another plugin's (`dd-bench plugins`)",
    )
    p.add_argument("--out", type=Path, required=True, help="the file or folder to create (never replaced)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("buffer", help="train expert trajectories for trajectory matching (cached, resumable)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", default="convnet", help="expert architecture (default convnet)")
    p.add_argument("--experts", type=int_from(1), default=10, help="number of experts (default 10)")
    p.add_argument("--epochs", type=int_from(1), default=50, help="epochs per expert (default 50)")
    p.add_argument("--optimizer", default="sgd", help="expert optimizer: sgd (default) or a plugin's, e.g. gsam")
    p.add_argument("--lr", type=positive_float, default=0.01, help="expert learning rate (default 0.01)")
    p.add_argument("--batch-size", type=int_from(1), default=256)
    p.add_argument("--no-dsa", action="store_true", help="train experts without DSA")
    p.add_argument("--zca", action="store_true", help="train experts on ZCA-whitened images")
    p.add_argument("--cache-dir", type=Path, help="cache folder (default $DD_BENCH_CACHE or ~/.cache/dd-bench)")
    p.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="also write the experts into the new folder DIR as MTT's, FTD's and DATM's buffer.py do"
        " (replay_buffer_0.pt)",
    )
    data_options(p)
    p.set_defaults(func=cmd_buffer)
