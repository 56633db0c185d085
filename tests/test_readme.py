"""The README's desk-agent example runs as written (real default model; integration)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_readme_desk_agent_runs(tmp_path):
    block = re.search(r"<!-- desk-agent -->\s*```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) >= 2 and (tmp_path / "desk.db").exists()
