"""Plots as PNG files (matplotlib's object API with the Agg canvas: no pyplot global state, no display).

Each function takes plain data and a path, and writes one figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from kopt.select.frontier import GroupSelection, fmt
from kopt.select.metrics import Catalog, is_number
from kopt.select.rows import Row

DPI = 110
WINNER = "#d62728"
FRONTIER = "#1f77b4"
OTHER = "#9aa5b1"
REJECTED = "#8a94a3"


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _label(m: str, cat: Catalog) -> str:
    meta = cat.get(m)
    if meta is None:
        return m
    arrow = {"higher": "higher is better", "lower": "lower is better", "zero": "closer to 0 is better"}[meta.direction]
    return f"{meta.label}{' (' + meta.unit + ')' if meta.unit else ''} - {arrow}"


def pareto(group: GroupSelection, speed: str, quality: str, size: str | None, path: Path,
           cat: Catalog, title: str) -> Path:
    """Speed (x) vs quality (y) of one provider's variants; marker area ~ size; frontier joined, winner starred,
    the quality constraint drawn as a dashed line."""
    fig = _figure(7.2, 4.6)
    ax = fig.add_subplot()
    pts = [r for r in group.rows if is_number(r.value(speed)) and is_number(r.value(quality))]
    sizes = [r.value(size) for r in pts if size and is_number(r.value(size))]
    smax = max(sizes) if sizes else 1.0
    front = {r.variant_key for r in group.frontier}
    win = group.winner.variant_key if group.winner else None
    for r in pts:
        v = group.verdict(r.variant_key)
        area = 40 + 260 * (r.value(size) / smax if size and is_number(r.value(size)) and smax else 0.3)
        if r.variant_key == win:
            color, marker, z = WINNER, "*", 4
            area *= 2.2
        elif r.variant_key in front:
            color, marker, z = FRONTIER, "o", 3
        elif v.outcome == "dominated":
            color, marker, z = OTHER, "o", 2
        else:
            color, marker, z = REJECTED, "X", 1
        ax.scatter([r.value(speed)], [r.value(quality)], s=area, c=color, marker=marker, zorder=z,
                   edgecolors="black", linewidths=0.5, alpha=0.9)
        ax.annotate(r.variant, (r.value(speed), r.value(quality)), textcoords="offset points", xytext=(6, 5),
                    fontsize=8, color="#222" if r.variant_key in front else "#666")
    if len(group.frontier) > 1:
        fr = sorted(group.frontier, key=lambda r: r.value(speed))
        ax.plot([r.value(speed) for r in fr], [r.value(quality) for r in fr], "-", color=FRONTIER, lw=1.2,
                zorder=2, label="Pareto frontier")
    b = group.constraints.get(quality)
    if b is not None and b.min is not None:
        ax.axhline(b.min, color=WINNER, ls="--", lw=1, label=f"{quality} >= {fmt(b.min)}")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="*", ls="", color=WINNER, markersize=12, label="winner"),
               Line2D([], [], marker="o", ls="", color=FRONTIER, markersize=8, label="on frontier"),
               Line2D([], [], marker="o", ls="", color=OTHER, markersize=8, label="dominated"),
               Line2D([], [], marker="X", ls="", color=REJECTED, markersize=8, label="rejected")]
    extra, labels = ax.get_legend_handles_labels()
    ax.legend(handles=handles + extra, fontsize=8, loc="best", framealpha=0.85)
    ax.margins(x=0.12, y=0.1)
    ax.set_xlabel(_label(speed, cat))
    ax.set_ylabel(_label(quality, cat))
    ax.set_title(title + (f"\nwinner: {group.winner.variant}" if group.winner else "\nno winner"), fontsize=10)
    ax.grid(True, alpha=0.3)
    if not pts:
        ax.text(0.5, 0.5, f"no variant has both {speed} and {quality}", ha="center", va="center",
                transform=ax.transAxes)
    return _save(fig, path)


def rtf_bars(groups: Sequence[tuple[str, Sequence[Row], str | None]], metric: str, path: Path, cat: Catalog) -> Path:
    """One panel per (machine, provider): horizontal bars of ``metric`` per variant, p10-p90 whiskers
    when the spread is recorded, the winner in red."""
    n = max(len(groups), 1)
    height = sum(0.9 + 0.32 * max(len(rows), 1) for _, rows, _ in groups) or 2.0
    fig = _figure(7.2, max(2.4, height))
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    spread_name = metric.rsplit("_", 1)[0] if metric.endswith(("_median", "_p90")) else metric
    for ax, (title, rows, winner_key) in zip(axes, groups):
        rows = sorted([r for r in rows if is_number(r.value(metric))], key=lambda r: r.value(metric), reverse=True)
        ys = list(range(len(rows)))
        vals = [r.value(metric) for r in rows]
        colors = [WINNER if r.variant_key == winner_key else FRONTIER for r in rows]
        ax.barh(ys, vals, color=colors, height=0.65)
        for y, r in zip(ys, rows):
            s = r.spread.get(metric) or r.spread.get(spread_name)
            end = r.value(metric)
            if isinstance(s, dict) and is_number(s.get("p10")) and is_number(s.get("p90")) and metric.endswith("_median"):
                ax.plot([s["p10"], s["p90"]], [y, y], color="black", lw=1)
                ax.plot([s["p10"], s["p90"]], [y, y], "|", color="black", ms=6)
                end = max(end, s["p90"])
            ax.annotate(fmt(r.value(metric)), (end, y), xytext=(4, -3), textcoords="offset points", fontsize=7)
        ax.set_yticks(ys, [r.variant for r in rows], fontsize=8)
        ax.margins(x=0.15)
        ax.set_title(title, fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
        if not rows:
            ax.text(0.5, 0.5, f"no {metric} measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(_label(metric, cat), fontsize=8)
    return _save(fig, path)


def size_quality(rows: Sequence[Row], size: str, quality: str, path: Path, cat: Catalog,
                 winners: set[str] = frozenset()) -> Path:
    """Size (x) vs quality (y), one point per variant (quality is provider-independent)."""
    fig = _figure(7.2, 4.4)
    ax = fig.add_subplot()
    seen: dict[str, Row] = {}
    for r in rows:
        if is_number(r.value(size)) and is_number(r.value(quality)):
            seen.setdefault(r.variant_key, r)
    for r in seen.values():
        w = r.variant_key in winners
        ax.scatter([r.value(size)], [r.value(quality)], s=90 if w else 45, c=WINNER if w else FRONTIER,
                   marker="*" if w else "o", edgecolors="black", linewidths=0.5, zorder=3)
        ax.annotate(r.variant, (r.value(size), r.value(quality)), xytext=(5, 4), textcoords="offset points", fontsize=8)
    ax.margins(x=0.12, y=0.1)
    ax.set_xlabel(_label(size, cat))
    ax.set_ylabel(_label(quality, cat))
    ax.set_title("size vs quality (red star: a winner on some provider)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if not seen:
        ax.text(0.5, 0.5, f"no variant has both {size} and {quality}", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def ranking(items: Sequence[tuple[str, float]], path: Path, title: str, xlabel: str, top: int = 25,
            chosen: set[str] | None = None, budget: float | None = None) -> Path:
    """Horizontal bars of a sensitivity ranking, most sensitive on top; with ``chosen``, the groups a
    precision map keeps int8 in green and the others in red; ``budget`` as a dashed line."""
    items = list(items)[:top]
    fig = _figure(7.2, max(2.4, 0.8 + 0.26 * len(items)))
    ax = fig.add_subplot()
    ys = list(range(len(items)))[::-1]
    colors = FRONTIER if chosen is None else ["tab:green" if n in chosen else "tab:red" for n, _ in items]
    ax.barh(ys, [v for _, v in items], color=colors, height=0.7)
    if budget is not None:
        ax.axvline(budget, color="k", linestyle="--", linewidth=1, label=f"budget {budget}")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_yticks(ys, [_ellipsize(n, 48) for n, _ in items], fontsize=7)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path)


def sensitivity(result: dict, path: Path) -> Path:
    """A ``kopt sensitivity`` result: every group's score alone, the chosen ones green, the budget."""
    metric = "aligned" if result.get("aligned") else "natural"
    return ranking([(r["group"], r["score"]) for r in result["ranking"]], path,
                   "Kokoro int8 sensitivity (green: int8 in the chosen map)",
                   f"PESQ-wb ({metric}) vs fp32 with only this group int8", top=len(result["ranking"]),
                   chosen=set(result.get("int8_groups", [])), budget=result["config"]["budget"])


def trend(series: dict[str, list[tuple[str, float]]], run_order: Sequence[str], metric: str, path: Path,
          cat: Catalog, marks: dict[str, Sequence[str]] | None = None, title: str | None = None) -> Path:
    """One line per series (variant @ provider @ machine) over the runs in order; ``marks`` (series -> runs)
    rings the points a regression verdict flagged."""
    fig = _figure(7.2, 3.8)
    ax = fig.add_subplot()
    pos = {r: i for i, r in enumerate(run_order)}
    ringed = False
    for name, pts in sorted(series.items()):
        pts = sorted((pos[r], v) for r, v in pts if r in pos and is_number(v))
        if pts:
            ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", ms=4, lw=1.2, label=_ellipsize(name, 40))
        bad = [(p, v) for p, v in pts if run_order[p] in set((marks or {}).get(name, ()))]
        if bad:
            ax.scatter([p for p, _ in bad], [v for _, v in bad], s=160, facecolors="none", edgecolors=WINNER,
                       linewidths=2, zorder=5, label=None if ringed else "regression (vs earlier runs)")
            ringed = True
    ax.set_xticks(range(len(run_order)), [_ellipsize(r, 18) for r in run_order], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(_label(metric, cat), fontsize=8)
    ax.set_title(title or f"history: {metric}", fontsize=10)
    ax.grid(True, alpha=0.3)
    if len(series) <= 12:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def _ellipsize(s: str, n: int) -> str:
    return s if len(s) <= n else s[: max(1, math.floor(n / 2) - 1)] + "..." + s[-(n // 2 - 2):]


def spectrograms(ref, win, sample_rate: int, path: Path, title: str, names: tuple[str, str], aligned: bool) -> Path:
    """Three panels on one dB scale: the reference's spectrogram, the winner's, and the spectrogram of their
    difference signal (winner - reference), which shows where and how loud the change is."""
    import numpy as np
    from scipy.signal import stft

    n = min(len(ref), len(win))
    ref, win = np.asarray(ref[:n], np.float64), np.asarray(win[:n], np.float64)
    kw = {"fs": sample_rate, "nperseg": 1024, "noverlap": 768, "window": "hann"}
    f, t, sr = stft(ref, **kw)
    _, _, sw = stft(win, **kw)
    _, _, sd = stft(win - ref, **kw)
    floor = 1e-7
    db = [20 * np.log10(np.abs(s) + floor) for s in (sr, sw, sd)]
    top = float(db[0].max())
    fig = _figure(7.2 * 1.6, 3.2)
    axes = fig.subplots(1, 3, sharey=True)
    err = float(np.sqrt(np.mean((win - ref) ** 2)) / (np.sqrt(np.mean(ref ** 2)) or 1.0))
    labels = (f"reference ({names[0]})", f"winner ({names[1]})",
              f"difference (winner - reference), {20 * np.log10(err + 1e-12):.1f} dB vs reference")
    im = None
    for ax, d, lab in zip(axes, db, labels):
        im = ax.pcolormesh(t, f / 1000, d, vmin=top - 90, vmax=top, cmap="magma", shading="auto", rasterized=True)
        ax.set_title(lab, fontsize=9)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("frequency (kHz)", fontsize=8)
    fig.colorbar(im, ax=list(axes), label="dB", shrink=0.9, pad=0.01)
    fig.suptitle(title + ("" if aligned else " (natural durations: not sample-aligned)"), fontsize=10)
    return _save(fig, path)
