"""Generate the Python stubs in taskscheduler/v1 from proto/, or check them.

Run as `python -m taskscheduler.protogen --out .` to regenerate, or with
`--check` to exit 1 when the committed stubs differ from fresh output.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.api import annotations_pb2
from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
PACKAGE_DIR = Path("taskscheduler") / "v1"


def generate(out_dir: Path) -> None:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto file under out_dir."""
    googleapis_root = Path(annotations_pb2.__file__).resolve().parent.parent.parent
    well_known_root = resources.files("grpc_tools") / "_proto"
    proto_files = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={googleapis_root}",
        f"--proto_path={well_known_root}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *proto_files,
    ]
    status = protoc.main(args)
    if status != 0:
        raise SystemExit(f"protoc failed with exit status {status}")

    init_file = out_dir / PACKAGE_DIR / "__init__.py"
    init_file.write_text('"""Generated protobuf and gRPC stubs of the taskscheduler.v1 API."""\n')


def check() -> int:
    """Return 0 when the committed stubs match fresh output, else 1 with the differing files."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = Path(tmp)
        generate(fresh_root)
        fresh_dir = fresh_root / PACKAGE_DIR
        committed_dir = REPO_ROOT / PACKAGE_DIR
        fresh = {p.name for p in fresh_dir.iterdir() if p.is_file()}
        committed = {p.name for p in committed_dir.iterdir() if p.is_file()}
        stale = sorted(fresh ^ committed)
        common = sorted(fresh & committed)
        _, mismatch, errors = filecmp.cmpfiles(fresh_dir, committed_dir, common, shallow=False)
        stale += mismatch + errors
    if stale:
        print(
            "generated stubs are stale: " + ", ".join(stale) + "; run `make proto` and commit",
            file=sys.stderr,
        )
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="root folder to write into")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    options = parser.parse_args()
    if options.check:
        raise SystemExit(check())
    generate(options.out)


if __name__ == "__main__":
    main()
