"""The project installs as a package: scripts outside the repository root import it."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def test_a_script_in_a_subfolder_imports_the_installed_package():
    # `python benchmarks/train_step.py` puts benchmarks/, not the repository root, on
    # sys.path: fproi_jax imports only because `make install` installed it (editable).
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "benchmarks/train_step.py", "--help"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=300)
    # absl prints the flags and exits with status 1 on --help; the script's own flags are
    # defined after its imports, so they are listed only if `import fproi_jax` worked.
    assert "--steps: Timed steps" in result.stdout, result.stderr[-3000:]
    assert result.returncode in (0, 1) and not result.stderr, result.stderr[-3000:]


def test_fproi_jax_refuses_python_older_than_3_11():
    code = "import sys; sys.version_info = (3, 10, 14, 'final', 0); import fproi_jax"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError: fproi_jax needs Python >= 3.11" in result.stderr


def test_make_install_refuses_python_older_than_3_11(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make")
    old_python = tmp_path / "python3.10"
    old_python.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.10.14" && exit 0\n'
                          'exit 1\n')
    old_python.chmod(0o755)
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--no-print-directory", "install", f"PYTHON={old_python}", f"VENV={venv}",
         f"STAMP={venv}/.installed"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "fproi-jax needs Python >= 3.11" in result.stderr
    assert "is Python 3.10.14" in result.stderr
    assert not venv.exists()
