#!/usr/bin/env bash
# Fill .gpu-carry/ (git-ignored) with what a bare, offline GPU machine lacks for benchmarks/gpu/run.sh:
#   wheels/        MLflow's tracking client and the packages SQLite tracking needs that the device
#                  image does not have (Python 3.12, manylinux x86-64, pinned: the set run.sh was
#                  checked with, in a Python 3.12 environment holding only the device's packages)
#   fashion-mnist/ Fashion-MNIST's four IDX files, xz-compressed for the trip (run.sh unpacks them)
# Runs here, on a machine with the package registry and the Debian package dataset-fashion-mnist.
#
#   bash benchmarks/gpu/prepare.sh [DEST]        # DEST defaults to .gpu-carry
#
# Prints the total size and fails above 48 MiB (the device takes 64 MiB with the working tree).
# Re-running keeps what is already there and valid.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=${1:-.gpu-carry}
fmnist=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

# mlflow-skinny and what it imports on the way to a SQLite store (alembic, SQLAlchemy, the
# model-registry tables' cryptography), minus what the device image has (its list:
# .library/device/KINDS.md). Left out on purpose, measured unneeded: gitpython, python-dotenv,
# uvicorn, google-auth (server, git and Databricks-auth paths).
wheels=(
    mlflow-skinny==3.18.0 sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 sqlparse==0.6.1
    cachetools==7.3.3 importlib-metadata==10.2.0 lazy-importer==0.1.0
    opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-proto==1.45.2
    opentelemetry-semantic-conventions==0.66b2
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    fastapi==0.165.0 starlette==1.10.0 databricks-sdk==0.167.0
    cryptography==50.0.2 cffi==2.1.1 pycparser==3.12
)

mkdir -p "$dest/wheels" "$dest/fashion-mnist"
echo "prepare: ${#wheels[@]} wheels for Python 3.12 x86-64 into $dest/wheels" >&2
python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$dest/wheels" "${wheels[@]}"

python3 - "$dest" "$fmnist" "${wheels[@]}" <<'EOF'
"""Keep one wheel per pinned package, xz the IDX files (atomically), print sizes, check the limit."""
import lzma
import os
import re
import sys
from pathlib import Path

dest, source, pins = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
norm = lambda name: re.sub(r"[-_.]+", "_", name).lower()  # noqa: E731
wanted = {norm(p.split("==")[0]): p.split("==")[1] for p in pins}
for wheel in (dest / "wheels").glob("*.whl"):
    name, version = wheel.name.split("-")[:2]
    if wanted.get(norm(name)) != version:
        print(f"prepare: removing {wheel.name} (not pinned)", file=sys.stderr)
        wheel.unlink()

stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
for stem in stems:
    found = [p for p in (source / f"{stem}.gz", source / stem) if p.is_file()]
    if not found:
        sys.exit(f"prepare: {source / stem}[.gz] not found: apt-get install dataset-fashion-mnist,"
                 " or set FASHION_MNIST_DIR to the folder holding the four IDX files")
    target = dest / "fashion-mnist" / f"{stem}.xz"
    if target.exists() and target.stat().st_mtime >= found[0].stat().st_mtime:
        continue
    print(f"prepare: compressing {found[0]} -> {target}", file=sys.stderr)
    if found[0].suffix == ".gz":
        import gzip
        payload = gzip.decompress(found[0].read_bytes())
    else:
        payload = found[0].read_bytes()
    partial = target.with_suffix(".xz.partial")
    partial.write_bytes(lzma.compress(payload, preset=6))
    os.replace(partial, target)

sizes = {p: p.stat().st_size for p in dest.rglob("*") if p.is_file()}
wheels = sum(s for p, s in sizes.items() if p.suffix == ".whl")
data = sum(s for p, s in sizes.items() if p.suffix == ".xz")
total = sum(sizes.values())
print(f"prepare: {dest}: wheels {wheels / 2**20:.1f} MiB ({sum(p.suffix == '.whl' for p in sizes)} files),"
      f" Fashion-MNIST {data / 2**20:.1f} MiB, total {total / 2**20:.1f} MiB")
limit = 48
if total > limit * 2**20:
    sys.exit(f"prepare: {dest} is {total / 2**20:.1f} MiB, over the {limit} MiB a device run can carry")
EOF
