"""Timeline picture of a bank: each memory a row, each version a bar from when it was observed
(`valid_at`) to when the next event of the memory ended it, ops marked (ADD, UPDATE, RESTORE at
a bar's start; DELETE and ERASE where the memory ended), bars labelled with their event seq where
there is room. Erased versions are drawn hatched, without text; an erase later than the content's
last observation is pinned to the right edge. For a large bank, filter by ids,
by a search query or by a time window; past `max_rows` the most recently changed rows are kept
and the title says how many were left out."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .clock import to_stamp
from .errors import BadInput, NotFound

if TYPE_CHECKING:
    from .store import MemoryStore

_MARK = {"ADD": ("o", "#2ca02c"), "UPDATE": ("^", "#1f77b4"), "RESTORE": ("*", "#9467bd"),
         "DELETE": ("X", "#d62728"), "ERASE": ("s", "black")}
_BAR = {"ADD": "#98df8a", "UPDATE": "#aec7e8", "RESTORE": "#c5b0d5"}


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).replace(tzinfo=None)


def _rows(store: "MemoryStore", memory_ids: Iterable[str] | None) -> dict[str, list]:
    """Each memory's state-changing events, in log order."""
    wanted = set(memory_ids) if memory_ids is not None else None
    rows: dict[str, list] = defaultdict(list)
    for e in store.conn.execute(
            "SELECT memory_id, seq, op, text, valid_at, erased FROM events WHERE bank = ? "
            "AND outcome = 'applied' AND op <> 'NOOP' ORDER BY seq", (store.bank,)):
        if wanted is None or e["memory_id"] in wanted:
            rows[e["memory_id"]].append(e)
    return rows


def timeline(store: "MemoryStore", out: str | Path, *, memory_ids: Iterable[str] | None = None,
             query: str | None = None, since: Any = None, until: Any = None, max_rows: int = 300) -> dict:
    """Draw the bank's timeline into the PNG `out`; returns what was drawn (rows, events, left out)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise BadInput(f"timeline writes a PNG: give --out a name ending in .png, not {out.name!r}")
    if not out.parent.is_dir():
        raise BadInput(f"no such folder for --out: {out.parent}")
    lo = to_stamp(since) if since is not None else None
    hi = to_stamp(until, end_of_day=True) if until is not None else None
    ids = list(memory_ids) if memory_ids is not None else None
    if query is not None:
        found = [h.id for h in store.search(query, k=max_rows)]
        ids = found if ids is None else [i for i in ids if i in found]
    rows = _rows(store, ids)
    if ids is not None:
        missing = [i for i in ids if i not in rows]
        if missing and memory_ids is not None and query is None:
            raise NotFound(f"no memory {missing[0]!r} in bank {store.bank!r}")
    if lo or hi:  # keep memories with a version alive somewhere in the window
        def overlaps(events) -> bool:
            start, end = events[0]["valid_at"], events[-1]["valid_at"]
            alive_at_end = events[-1]["op"] not in ("DELETE", "ERASE")
            return (hi is None or start <= hi) and (lo is None or end >= lo or alive_at_end)
        rows = {m: ev for m, ev in rows.items() if overlaps(ev)}
    total = len(rows)
    if not rows:
        raise BadInput(f"nothing to draw: bank {store.bank!r} has no memories" + (" matching the filters" if (ids is not None or lo or hi) else ""))
    order = sorted(rows, key=lambda m: rows[m][-1]["seq"], reverse=True)[:max_rows]
    order.sort(key=lambda m: rows[m][0]["seq"])  # oldest memory on top

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    # the axis spans what the memories say (ADD/UPDATE observations): an erase, a delete or a
    # restore made later without a date of its own (stamped when it happened, often long after the
    # content) does not squeeze the history into a corner; its mark is pinned to the right edge
    stamps = [e["valid_at"] for m in order for e in rows[m] if e["op"] in ("ADD", "UPDATE")] or \
        [e["valid_at"] for m in order for e in rows[m]]
    t0, t1 = _when(lo or min(stamps)), _when(hi or max(stamps))
    span = max(t1 - t0, timedelta(days=1))
    t1 = t0 + span
    right = t1 + span * 0.03  # open versions run a little past the last event
    height = 1.2 + 0.24 * len(order)
    fig, ax = plt.subplots(figsize=(14, height))
    drawn = 0
    for y, memory_id in enumerate(order):
        events = rows[memory_id]
        for n, e in enumerate(events):
            start = min(_when(e["valid_at"]), right)
            marker, color = _MARK[e["op"]]
            ax.plot([start], [y], marker=marker, color=color, markersize=6, zorder=3, linestyle="none")
            drawn += (lo is None or e["valid_at"] >= lo) and (hi is None or e["valid_at"] <= hi)  # in the window
            if e["op"] in _BAR:
                end = min(_when(events[n + 1]["valid_at"]), right) if n + 1 < len(events) else right
                width = max(end - start, span * 0.002)
                ax.broken_barh([(mdates.date2num(start), width.total_seconds() / 86400)], (y - 0.35, 0.7),
                               facecolors="#dddddd" if e["erased"] else _BAR[e["op"]],
                               hatch="////" if e["erased"] else None, edgecolor="#888888", linewidth=0.4)
                room = int(150 * (width / span))  # characters that fit on the bar at this size
                if room >= 4:
                    # each version's own text on its bar, so earlier texts are seen, not only the last
                    label = f"#{e['seq']}" + (f" {e['text']}" if e["text"] and not e["erased"] else "")
                    ax.text(mdates.date2num(start + width / 2), y, label[:room - 1] + ("…" if len(label) >= room else ""),
                            ha="center", va="center", fontsize=6, color="#333333")
    labels = []
    for memory_id in order:
        last = next((e for e in reversed(rows[memory_id]) if e["text"]), None)
        text = "[erased]" if rows[memory_id][-1]["op"] == "ERASE" or last is None else last["text"]
        labels.append(f"{memory_id}  {text[:48] + ('…' if len(text) > 48 else '')}")
    ax.set_yticks(range(len(order)), labels, fontsize=7)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlim(mdates.date2num(t0 - span * 0.01), mdates.date2num(right + span * 0.01))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.grid(axis="x", color="#eeeeee")
    left_out = total - len(order)
    window = f" between {lo or 'the start'} and {hi or 'now'}" if lo or hi else ""
    title = f"bank {store.bank!r}: {len(order)} memories, {drawn} events{window}"
    if left_out:
        title += f" (the {left_out} least recently changed left out: filter with --query, --memory or --since/--until)"
    ax.set_title(title, fontsize=10, loc="left")
    handles = [plt.Line2D([], [], marker=m, color=c, linestyle="none", label=op) for op, (m, c) in _MARK.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"out": str(out), "rows": len(order), "events": drawn, "left_out": left_out,
            "axis": [t0.isoformat(), t1.isoformat()]}
