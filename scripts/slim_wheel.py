"""Repack carried wheels without the parts the GPU check never loads (`make gpu-carry`).

A lent GPU machine takes at most 64 MiB with the working tree, and pyarrow's wheel (needed by
datasets, which TRL's GRPOTrainer imports) is 49 MB of it. What DROP removes, per distribution:

  pyarrow  Arrow Flight, its gRPC RPC framework (libarrow_flight 9.7 MB compressed, _flight,
           libarrow_python_flight): only `pyarrow.flight` loads it, and datasets never imports it.
           The C++ headers and Cython sources (include/, includes/, src/, *.pxd, *.pyx, *.pxi) and
           the unversioned and fully versioned copies of libarrow_python* (libarrow_python.so,
           libarrow_python.so.2400.0.0): they serve building extensions against pyarrow; the
           loader asks for libarrow_python.so.2400 only, which stays. pyarrow's own test suite
           (tests/, _pyarrow_cpp_tests).
           libarrow_substrait stays: lib.cpython-*.so and every other extension name it as NEEDED.

The rest of the wheel is copied byte for byte (same entries, order, timestamps and metadata, the
same file name); RECORD is rewritten with the hash and size of every kept file and without the
dropped ones. Before writing, every kept ELF library's NEEDED entries (readelf -d, binutils) are
checked against the dropped files: a drop that a kept library needs is refused (exit 1), so a
pattern that outgrows a future pyarrow release fails here, not on the lent machine.

    python scripts/slim_wheel.py .gpu-carry/wheels/*.whl   # wheels with no entry in DROP: untouched
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from fnmatch import fnmatchcase
from pathlib import Path

# Archive paths (fnmatch: `*` crosses `/`) left out of each distribution's wheel; the module doc says why.
DROP: dict[str, tuple[str, ...]] = {
    "pyarrow": (
        "pyarrow/libarrow_flight.so*",
        "pyarrow/_flight.*",
        "pyarrow/libarrow_python_flight.so*",
        "pyarrow/include/*",
        "pyarrow/includes/*",
        "pyarrow/src/*",
        "pyarrow/*.pxd",
        "pyarrow/*.pyx",
        "pyarrow/*.pxi",
        "pyarrow/libarrow*.so",
        "pyarrow/libarrow*.so.*.*.*",
        "pyarrow/tests/*",
        "pyarrow/_pyarrow_cpp_tests.*",
    ),
}
NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")


class SlimError(Exception):
    """A wheel that cannot be slimmed as asked (one line, naming the wheel and the file)."""


def distribution(wheel: Path) -> str:
    """The wheel's distribution name, normalized (PEP 503: lower case, runs of -_. as -)."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()


def record_row(name: str, data: bytes) -> list[str]:
    """A RECORD row (PEP 376/427): path, sha256 as urlsafe base64 without padding, size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [name, f"sha256={digest}", str(len(data))]


def needed(data: bytes) -> set[str]:
    """The NEEDED entries of an ELF file's dynamic section, as readelf prints them."""
    if shutil.which("readelf") is None:
        raise SlimError("readelf (binutils) is needed to check that no kept library needs a dropped one")
    with tempfile.NamedTemporaryFile(suffix=".so") as f:
        f.write(data)
        f.flush()
        out = subprocess.run(["readelf", "-d", f.name], capture_output=True, text=True, check=True).stdout
    return set(NEEDED.findall(out))


def slim(wheel: Path, patterns: tuple[str, ...]) -> tuple[int, list[str]]:
    """Rewrite `wheel` in place without the entries matching `patterns`; (bytes saved, dropped)."""
    with zipfile.ZipFile(wheel) as src:
        infos = src.infolist()
        record = next((i.filename for i in infos if i.filename.endswith(".dist-info/RECORD")), None)
        if record is None:
            raise SlimError(f"{wheel.name}: no .dist-info/RECORD")
        dropped = [i.filename for i in infos if any(fnmatchcase(i.filename, p) for p in patterns)]
        if not dropped:
            raise SlimError(
                f"{wheel.name}: none of DROP's patterns matches a file; check them against this release"
            )
        gone = {os.path.basename(n) for n in dropped}
        kept = [i for i in infos if i.filename not in set(dropped) and i.filename != record]
        rows, blobs = [], {}
        for info in kept:
            data = src.read(info)
            blobs[info.filename] = data
            if not info.is_dir():
                rows.append(record_row(info.filename, data))
            if data[:4] == b"\x7fELF" and (missing := needed(data) & gone):
                raise SlimError(
                    f"{wheel.name}: {info.filename} needs {', '.join(sorted(missing))}, which DROP removes"
                )
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([*rows, [record, "", ""]])
        record_info = src.getinfo(record)
        tmp = wheel.with_name(wheel.name + ".slim")
        with zipfile.ZipFile(tmp, "w") as out:
            for info in kept:
                out.writestr(info, blobs[info.filename], compress_type=info.compress_type)
            out.writestr(record_info, text.getvalue(), compress_type=record_info.compress_type)
    before = wheel.stat().st_size
    tmp.replace(wheel)
    return before - wheel.stat().st_size, dropped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wheels", nargs="+", type=Path)
    args = p.parse_args(argv)
    for wheel in args.wheels:
        patterns = DROP.get(distribution(wheel))
        if patterns is None:
            continue
        try:
            saved, dropped = slim(wheel, patterns)
        except SlimError as exc:
            print(f"slim_wheel: {exc}", file=sys.stderr)
            return 1
        print(
            f"slim_wheel: {wheel.name}: {len(dropped)} files dropped, {saved} bytes saved, "
            f"{wheel.stat().st_size} bytes left"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
