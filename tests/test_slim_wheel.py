"""scripts/slim_wheel.py: carried wheels repacked without what the GPU check never loads, on
wheels built here with pyarrow's file names (the real pyarrow wheel: tests/carry/)."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
import zlib
from pathlib import Path

import pytest
from helpers.scripts import load_script

slim_wheel = load_script("slim_wheel")
KEEP = [
    "pyarrow/__init__.py",
    "pyarrow/lib.cpython-312-x86_64-linux-gnu.so",  # "lib*.so" would have taken it
    "pyarrow/libarrow.so.2400",
    "pyarrow/libarrow_python.so.2400",  # the name the loader asks for
    "pyarrow/libarrow_substrait.so.2400",  # NEEDED by lib.*.so
    "pyarrow/_parquet.cpython-312-x86_64-linux-gnu.so",
    "pyarrow/parquet/core.py",
    "pyarrow-9.0.0.dist-info/METADATA",
    "pyarrow-9.0.0.dist-info/WHEEL",
]
DROPPED = [
    "pyarrow/libarrow_flight.so.2400",
    "pyarrow/_flight.cpython-312-x86_64-linux-gnu.so",
    "pyarrow/libarrow_python_flight.so.2400",
    "pyarrow/libarrow_python.so",
    "pyarrow/libarrow_python.so.2400.0.0",
    "pyarrow/include/arrow/api.h",
    "pyarrow/includes/libarrow.pxd",
    "pyarrow/src/arrow/python/api.h",
    "pyarrow/lib.pyx",
    "pyarrow/table.pxi",
    "pyarrow/tests/test_table.py",
    "pyarrow/_pyarrow_cpp_tests.cpython-312-x86_64-linux-gnu.so",
]
RECORD = "pyarrow-9.0.0.dist-info/RECORD"


def test_record_rows_hash_as_pep_427_says():
    # FIPS 180-2's test vector: sha256("abc") = ba7816bf...15ad, as urlsafe base64 without padding
    assert slim_wheel.record_row("a/b.py", b"abc") == [
        "a/b.py", "sha256=ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0", "3"
    ]  # fmt: skip


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    rows = [slim_wheel.record_row(name, data) for name, data in files.items()] + [[RECORD, "", ""]]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(RECORD, text.getvalue())
    return path


def test_pyarrow_loses_what_drop_names_and_keeps_the_rest_byte_for_byte(tmp_path):
    files = {name: f"{name}\n".encode() * 50 for name in KEEP + DROPPED}
    wheel = _wheel(tmp_path / "pyarrow-9.0.0-cp312-cp312-manylinux_2_28_x86_64.whl", files)
    before = wheel.stat().st_size
    assert slim_wheel.main([str(wheel)]) == 0
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert sorted(names) == sorted([*KEEP, RECORD])
        assert all(z.read(name) == files[name] for name in KEEP)
        rows = list(csv.reader(io.StringIO(z.read(RECORD).decode())))
    assert rows == [slim_wheel.record_row(name, files[name]) for name in KEEP] + [[RECORD, "", ""]]
    assert wheel.stat().st_size < before and wheel.name.startswith("pyarrow-9.0.0-")


def test_a_wheel_without_patterns_is_left_alone(tmp_path):
    wheel = _wheel(tmp_path / "pandas-9.0.0-py3-none-any.whl", {"pandas/tests/x.py": b"x"})
    data = wheel.read_bytes()
    assert slim_wheel.main([str(wheel)]) == 0 and wheel.read_bytes() == data


def test_patterns_that_match_nothing_are_refused(tmp_path, capsys):
    wheel = _wheel(tmp_path / "pyarrow-9.0.0-py3-none-any.whl", {"pyarrow/__init__.py": b""})
    assert slim_wheel.main([str(wheel)]) == 1
    assert "none of DROP's patterns matches" in capsys.readouterr().err


def test_a_drop_that_a_kept_library_needs_is_refused(tmp_path, capsys):
    """A real ELF (CPython's zlib module, NEEDED libz.so.1) kept, and a libz.so.1 among the drops."""
    elf = Path(zlib.__file__) if hasattr(zlib, "__file__") else None
    if elf is None or elf.read_bytes()[:4] != b"\x7fELF" or shutil.which("readelf") is None:
        pytest.skip("needs zlib as an ELF extension module and readelf")
    files = {"pyarrow/zlib.so": elf.read_bytes(), "pyarrow/tests/libz.so.1": b"not loaded"}
    wheel = _wheel(tmp_path / "pyarrow-9.0.0-cp312-cp312-manylinux_2_28_x86_64.whl", files)
    data = wheel.read_bytes()
    assert slim_wheel.main([str(wheel)]) == 1
    assert "pyarrow/zlib.so needs libz.so.1, which DROP removes" in capsys.readouterr().err
    assert wheel.read_bytes() == data  # refused before anything is written
