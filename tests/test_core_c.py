"""Build and run the pure-C core tests (csrc/core/tests) with the system compiler."""

import os
import shutil
import subprocess

import pytest

CORE = os.path.join(os.path.dirname(__file__), os.pardir, "csrc", "core")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_core_c_suite(tmp_path):
    result = subprocess.run(
        ["make", "-C", CORE, "test", f"OUT={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " 0 failed" in output, output
