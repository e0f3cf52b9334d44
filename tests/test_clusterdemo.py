"""
C{scripts/cluster-demo --check} (issue 14, item 8): one command starts a
redis-server, two nodes and a MUC component connected to both, checks that
both nodes take clients and a message crosses them, and stops everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "cluster-demo")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_clusterDemoCheck():
    result = subprocess.run([sys.executable, SCRIPT, "--check"], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cluster-demo: check passed" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["n1", "alive"] for line in lines)
    assert any(line.split()[:2] == ["n2", "alive"] for line in lines)
    # Everything it started is gone with it: its directory too.
    directory = lines[0].rsplit(" ", 1)[1]
    assert directory.startswith("/") and not os.path.exists(directory)
