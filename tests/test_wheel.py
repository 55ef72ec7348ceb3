"""The built wheel carries the grammar: a non-editable install parses the reference spec.

Slow (builds a wheel, makes a venv: ~10 s), so marked `slow`; it runs in the default suite.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _build_wheel(out: Path) -> Path:
    build = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(out)]
    if importlib.util.find_spec("hatchling") is not None:
        build.append("--no-build-isolation")  # offline and fast when the backend is at hand
    _run(*build)
    (wheel,) = out.glob("syncdsl-*.whl")
    return wheel


def test_wheel_install_parses_the_reference_spec(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        grammar = archive.read("syncdsl/grammar/sync.lark").decode("utf-8")
    assert grammar == (REPO / "grammar" / "sync.lark").read_text(encoding="utf-8")

    # A fresh venv holding only the wheel; its dependencies come from this environment's
    # site-packages through a .pth file (paths only: this env's editable syncdsl stays out).
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    ).strip()
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "_outer_deps.pth").write_text("\n".join(sorted(outer)) + "\n")
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        wheel,
    )

    # Run from a copy of specs/, away from the repository, so only the wheel can supply the grammar.
    workdir = tmp_path / "work"
    shutil.copytree(REPO / "specs", workdir / "specs", ignore=shutil.ignore_patterns("*.lock"))
    code = (
        "import syncdsl; spec = syncdsl.load('specs/example.sync'); "
        "print(syncdsl.__file__); print(len(spec.sources), len(spec.audiences))"
    )
    location, counts = _run(python, "-c", code, cwd=workdir).splitlines()
    assert Path(location).is_relative_to(venv)
    assert counts == "2 2"
