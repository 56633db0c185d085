"""A run's learning curve: read from OUT/log.jsonl and drawn to OUT/reward_curve.png."""

from __future__ import annotations

import json
from pathlib import Path


def curve(out: Path) -> list[dict]:
    """Per step: mean reward (GRPO) or loss (SFT), from OUT/log.jsonl; the last entry for a step wins."""
    rows = {}
    path = out / "log.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        r = json.loads(line)
        if "reward" in r or "loss" in r:
            rows[r["step"]] = {k: r[k] for k in ("step", "reward", "reward_std", "loss") if r.get(k) is not None}
    return [rows[k] for k in sorted(rows)]


def plot(out: Path, result: dict) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = result["curve"]
    key = "reward" if any("reward" in p for p in pts) else "loss"
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = [p["step"] for p in pts if key in p]
    ys = [p[key] for p in pts if key in p]
    ax.plot(xs, ys, marker="o", label=f"train {key}")
    if len(ys) >= 4:
        w = max(2, len(ys) // 5)
        ax.plot(xs[w - 1:], [sum(ys[i - w + 1:i + 1]) / w for i in range(w - 1, len(ys))], label=f"moving mean ({w})")
    v = result.get("validation")
    if v:
        ax.axhline(v["base"], color="gray", ls="--", label=f"val base {v['base']:.3f}")
        ax.axhline(v["trained"], color="green", ls="--", label=f"val trained {v['trained']:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.legend()
    fig.tight_layout()
    path = out / "reward_curve.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
