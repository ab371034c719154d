"""The options several commands share, and the argparse types that check them: each bad value is one line, exit 2."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from tqdm import tqdm

from ..limits import INT64_MAX, MAX_SEED, MAX_SEED_COUNT


def load_registry():
    """The registry of every installed plugin (imported when a command needs it: ``--help`` stays fast)."""
    from ..plugins import Registry

    return Registry()


def command_line() -> str:
    """The command as typed, for provenance."""
    return "dd-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit 2) like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def seeds(text: str) -> list[int]:
    """``3`` means seeds 0,1,2; ``0,4,7`` names them."""
    allowed = f"use a count (3) or a list of seeds (0,4,7): a count from 1 to {MAX_SEED_COUNT}, distinct seeds from 0 to {MAX_SEED}"
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",")]  # an empty item ("0,4,") is refused: int("") fails
        else:
            count = int(text)
            seeds = list(range(count)) if 1 <= count <= MAX_SEED_COUNT else []
    except ValueError:
        seeds = []
    if (
        not seeds
        or len(seeds) > MAX_SEED_COUNT
        or any(not 0 <= s <= MAX_SEED for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}")
    return seeds


def int_from(low: int, high: int = INT64_MAX) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            upper = f" and <= {high}" if high < INT64_MAX else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use an integer >= {low}{upper}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a finite number > 0")
    return value


def name_list(text: str) -> list[str]:
    """``a,b``: distinct names; an empty item (``mlp,``, ``a,,b``) is a typo, not a name to skip."""
    names = [n.strip() for n in text.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: use distinct comma-separated names, none empty (convnet,mlp)"
        )
    return names


def check_file_to_write(path: Path | None, option: str) -> None:
    """Refuse, before any work, an output file that is a folder or lies under a file (else the
    error would come only once the work is done)."""
    from ..errors import ConfigError

    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder: give the path of a file to write")
    check_parents(path, option)


def check_folder(path: Path | None, option: str) -> None:
    """Refuse, before any work, a folder option that names a file."""
    from ..errors import ConfigError

    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file: give a folder (it is made if missing)")
    check_parents(path, option)


def check_parents(path: Path, option: str) -> None:
    """Refuse a path under a file (a file where a folder belongs)."""
    from ..errors import ConfigError

    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, not a folder")
            return


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: use key=value")
    return key.strip(), value.strip()


def references(text: str) -> list[str]:
    names = [] if text.strip() == "none" else name_list(text)
    if any(n not in ("random", "full") for n in names):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use random, full, random,full or none")
    return names


def device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (default: the first CUDA GPU, else cpu), cpu, cuda, cuda:N")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic GPU kernels (slower): a GPU run is then a function of its seed, as a CPU run always is",
    )


def data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", type=Path, help="folder holding the dataset files")
    p.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    p.add_argument(
        "--resolution",
        type=int_from(1),
        metavar="N",
        help="resize and centre-crop to N x N (datasets read from image files, e.g. image_folder;"
        " evaluate: default the set's)",
    )
    device_options(p)


def resolve_device(args: argparse.Namespace):
    """The checked device of a command, said on stderr when ``auto`` picked it."""
    from ..runtime import resolve_device as resolve

    return resolve(args.device, say=lambda text: print(text, file=sys.stderr))


def progress(total: int, desc: str, shown: bool = True):
    return tqdm(total=total, desc=desc, unit="epoch", leave=False, disable=None if shown else True, file=sys.stderr)


def eval_options(p: argparse.ArgumentParser) -> None:
    """The evaluation protocol's options (``evaluate``, ``report``)."""
    p.add_argument(
        "--seeds", type=seeds, default=[0, 1, 2], help="evaluation networks: a count (3 = seeds 0,1,2) or a list 0,4,7"
    )
    p.add_argument(
        "--recipe",
        choices=["classic", "decoupled"],
        help="named evaluation recipe the other options override: classic (SGD, step decay, DSA; default) or"
        " decoupled (SRe2L/RDED: AdamW, cosine, 300 epochs, crop+flip, teacher labels at T=20, 0.875 test crop)",
    )
    p.add_argument("--epochs", type=int_from(1), help="training epochs (default 1000)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the set's learned lr, else 0.01)")
    p.add_argument("--batch-size", type=int_from(1), help="minibatch size (default 256)")
    p.add_argument("--no-dsa", action="store_true", help="train without DSA augmentation")
    p.add_argument("--no-weights", action="store_true", help="ignore the set's per-sample weights")
    p.add_argument(
        "--labels",
        choices=["hard", "set", "teacher"],
        help="label protocol: hard (class indices), set (the set's labels; default), teacher (the teacher's"
        " softened outputs on every augmented batch, KL at --temperature)",
    )
    p.add_argument("--temperature", type=positive_float, help="temperature of the teacher protocol (default 4)")
    p.add_argument("--teacher-model", help="labels=teacher: teacher architecture for a set that names no teacher")
    p.add_argument("--teacher-epochs", type=int_from(1), help="epochs of that teacher (default 30)")
    p.add_argument("--teacher-lr", type=positive_float, help="learning rate of that teacher (default 0.01)")


def eval_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The evaluation settings the command line gives (``recipe`` first), as ``EvalConfig`` fields."""
    values = {
        "recipe": getattr(args, "recipe", None),
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "dsa": False if args.no_dsa else None,
        "use_weights": False if args.no_weights else None,
        **{
            k: getattr(args, k, None)
            for k in ("labels", "temperature", "teacher_model", "teacher_epochs", "teacher_lr")
        },
    }
    return {k: v for k, v in values.items() if v is not None}


def eval_config_from(args: argparse.Namespace):
    from ..evaluate import EvalConfig

    overrides = eval_overrides(args)
    return EvalConfig.named(overrides.pop("recipe", "classic"), **overrides)
