"""The package layout: kdloss.adapters from adapters/, from an editable install and from a wheel;
the core imports no framework."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_public_interface():
    import kdloss

    for name in ("CWD", "MGD", "Mimic", "L1", "L2", "BCKD", "DetectionOutput", "DistillationLoss", "Schedule"):
        assert name in kdloss.__all__ and hasattr(kdloss, name)


def test_editable_install_maps_adapters_folder():
    """`make test` installs the project editable: kdloss.adapters must come from the top-level adapters/."""
    import kdloss
    import kdloss.adapters

    assert Path(kdloss.__file__).resolve().parent == ROOT / "kdloss"
    assert Path(kdloss.adapters.__file__).resolve().parent == ROOT / "adapters"


def test_core_imports_no_framework():
    for path in (ROOT / "kdloss").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                # triton: optional, ships with CUDA builds of torch; kdloss/ops/triton_kernels.py guards it
                allowed = {"torch", "einops", "numpy", "kdloss", "triton", "__future__"}
                assert top in allowed or top in sys.stdlib_module_names, \
                    f"{path.relative_to(ROOT)} imports {name}"
                assert not name.startswith("kdloss.adapters"), f"{path.relative_to(ROOT)} imports an adapter"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True)
    (path,) = out.glob("kdloss-*.whl")
    return path


def test_wheel_holds_every_source_file_under_kdloss(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not any(n.startswith("adapters/") for n in names), "adapters must not install as a top-level package"
    expected = {f"kdloss/{p.relative_to(ROOT / 'kdloss')}" for p in (ROOT / "kdloss").rglob("*.py")}
    expected |= {f"kdloss/adapters/{p.relative_to(ROOT / 'adapters')}" for p in (ROOT / "adapters").rglob("*.py")}
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"


def test_wheel_install_imports_adapters(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    code = ("import kdloss, kdloss.adapters, kdloss.functional; from kdloss import CWD;"
            "print(kdloss.__file__); print(kdloss.adapters.__file__)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                            check=True)
    core, adapters = result.stdout.split()
    assert Path(core).is_relative_to(target) and Path(adapters) == target / "kdloss" / "adapters" / "__init__.py"
