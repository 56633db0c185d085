"""The README is a user's page: its examples run as written, every relative link in it and in
docs/ resolves, and the product's prose speaks of the product (no work-log words)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def block(marker: str) -> str:
    return re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", README.read_text(), re.S).group(1)


def run_block(code: str, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_readme_is_short_and_starts_with_the_store(tmp_path):
    lines = README.read_text().splitlines()
    assert len(lines) < 200
    first_python = next(i for i, line in enumerate(lines) if line.startswith("```python"))
    assert first_python < 60 and lines[first_python - 1] == "<!-- store -->"
    proc = run_block(block("store"), tmp_path, 300)  # no language model: the store alone
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["['Alice has a dog named Max']", proc.stdout.splitlines()[1],
                                        "Alice has two dogs, Max and Bella", "True"]
    assert "restore" in proc.stdout.splitlines()[1]


@pytest.mark.integration
def test_readme_desk_agent_runs(tmp_path):
    proc = run_block(block("desk-agent"), tmp_path, 900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) >= 2 and (tmp_path / "desk.db").exists()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_resolves():
    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not this test's business
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
            elif anchor and dest.suffix == ".md":
                anchors = {slug(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(), re.M)}
                if anchor not in anchors:
                    broken.append(f"{page.relative_to(ROOT)} -> {target} (no such heading)")
    assert len(pages) > 10 and not broken, broken


WORK_LOG = re.compile(r"session [0-9]+|issues? [0-9]+|today's path", re.I)


def test_the_product_prose_has_no_work_log_words():
    """History belongs in git: README, docs, code, comments and help texts describe what things are."""
    files = [README, *(ROOT / "bench").glob("*.py")]
    for folder in ("docs", "memstore", "policy", "integrations", "trainer", "evaluation", "cli"):
        files += [f for f in (ROOT / folder).rglob("*") if f.suffix in (".md", ".py", ".txt", ".json")]
    found = [f"{f.relative_to(ROOT)}:{n}: {line.strip()[:80]}" for f in files
             for n, line in enumerate(f.read_text().splitlines(), 1) if WORK_LOG.search(line)]
    assert not found, f"{len(found)} lines, e.g. {found[:10]}"
