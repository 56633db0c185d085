"""The README's first command ends in examples/quickstart.sh: keep it working as written."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "examples" / "quickstart.sh"), str(tmp_path / "qs.db")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Caroline lives in Denver" in proc.stdout and "ok: 7 events" in proc.stdout
