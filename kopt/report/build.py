"""Write a report directory from results: tables (CSV + Markdown), plots (PNG), selection JSON, history,
and one self-contained ``index.html``.

Sources are (label, records) pairs, one per results file or folder given; shards' files merge into one
set of records (exact duplicates dropped, the newest record per cell wins), and records from different
machines stay apart: each (machine, provider) gets its own frontier and winner.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from kopt.core.progress import NullProgress, Progress
from kopt.report import history as hist
from kopt.report import html, plots, sensitivity, serving, tables
from kopt.report.listen import ListenSettings
from kopt.report.names import with_facts
from kopt.select.frontier import Selection, fmt, select
from kopt.select.metrics import Catalog
from kopt.select.rows import Row, build_rows, merge_records
from kopt.select.settings import SelectSettings


@dataclass
class ReportResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    selection: Selection | None = None
    rows: list[Row] = field(default_factory=list)
    runs: int = 0
    notes: list[str] = field(default_factory=list)
    listen: dict[str, Any] | None = None  # clips rendered and reused, models, notes

    @property
    def html(self) -> Path:
        return self.out / "index.html"


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower() or "x"


_NUMERIC = tuple(label for label, _ in tables.COLUMNS)


def _listen_section(records: Sequence[dict[str, Any]], tabs: Sequence[tables.ProviderTable],
                    settings: ListenSettings, plot_dir: Path, res: ReportResult, progress: Progress) -> str:
    """The check sentences as <audio> players grouped by sentence (reference, winner, then every other
    measured variant), and the reference-vs-winner spectrogram."""
    from kopt.core.contract import SAMPLE_RATE
    from kopt.report import listen as L

    measured = [t for t in tabs if t.measured]
    known = sorted({t.group.provider for t in tabs})
    if settings.winner_provider is not None and settings.winner_provider not in known:
        from kopt.core.errors import KoptError

        raise KoptError(f"listen provider {settings.winner_provider!r} is not in these results; "
                        f"choose from: {', '.join(known) or '(none)'}")
    target = next((t for t in measured if settings.winner_provider in (None, t.group.provider)), None)
    if target is None:
        return ('<p class="meta">No audio: nothing was measured on '
                + html.esc(settings.winner_provider or "any provider") + ".</p>")
    winner = target.group.winner
    order = list(dict.fromkeys((r.variant_key, r.variant) for t in measured for r in t.rows if r.status == "ok"))
    quality = [r for r in records if r.get("kind") == "quality"]
    ref_keys = Counter(str((r.get("inputs") or {}).get("reference_key")) for r in quality
                       if (r.get("inputs") or {}).get("reference_key"))
    ref_key = ref_keys.most_common(1)[0][0] if ref_keys else next((k for k, n in order if n == "reference"), None)
    voice = next((v[0] for r in quality for v in [(r.get("inputs") or {}).get("voices") or []] if v), None)
    models, notes = L.models_from(records, order, ref_key, winner.variant_key if winner else None, settings.store)
    if not models:
        where = settings.store.root if settings.store is not None else "no store given"
        res.notes.append(f"listen: no model of these results is available ({where}); pass the build's --artifacts")
        return ('<p class="meta">No audio: none of these variants\' models is in the artifact store '
                f"({html.esc(where)}). Run <code>kopt --artifacts DIR report ...</code> with the store of the build "
                "that made them.</p>")
    voices_path = settings.voices
    if voices_path is None and settings.store is not None:
        base = settings.store.root / "refs" / "base.json"
        if base.is_file():
            from kopt.core.refs import resolve

            voices_path = resolve(settings.store, "base").file("voices.npz")
    if voices_path is None:
        res.notes.append("listen: no voice pack (pass --voices)")
        return '<p class="meta">No audio: no voice pack (pass <code>--voices</code>).</p>'
    from kopt.source.voices import load_voices

    lis = L.render(models, load_voices(voices_path), settings, voice=voice, progress=progress)
    notes += lis.notes
    res.notes += [f"listen: {n}" for n in notes]
    res.listen = {"rendered": lis.rendered, "reused": lis.reused, "models": len(models), "notes": notes}
    ref_name = next((m.name for m in models if "reference" in m.role.split()), None)
    head = (f"Voice {lis.voice}; each model with its own durations (as a listener hears it); "
            f"16-bit FLAC at {SAMPLE_RATE // 1000} kHz. "
            + (f"Reference: {ref_name}. " if ref_name else "")
            + (f"Winner on {target.title}: {winner.variant}." if winner else f"No winner on {target.title}."))
    parts = [f'<p class="meta">{html.esc(head)}</p>']
    for tid, text in lis.texts:
        players = [html.audio_player(c.model.name, c.model.key[:tables.KEY_CHARS], c.model.role, c.data_uri(),
                                     c.seconds) for c in lis.clips[tid]]
        parts.append(html.sentence(f"{tid}: \u201c{text}\u201d", players))
    if lis.spectrogram is not None:
        ref_audio, win_audio, tid, aligned = lis.spectrogram
        names = (ref_name or "reference", winner.variant if winner else "winner")
        p = plots.spectrograms(ref_audio, win_audio, SAMPLE_RATE, plot_dir / "spectrogram.png",
                               f"{tid}, voice {lis.voice}", names, aligned)
        res.files.append(p)
        parts.append(html.wide_plot(p, f"{tid}: reference vs winner and their difference"
                                    + (" (winner fed the reference's durations, so the two are sample-aligned)"
                                       if aligned else " (natural durations)")))
    parts.append(html.notes(notes))
    return "".join(parts)


def _not_measured_html(tabs: Sequence[tables.ProviderTable]) -> str:
    """One line per provider where nothing was measured, with the reason."""
    lines = [f"<li><b>{html.esc(titles)}</b>: {html.esc(reason)}</li>" for titles, reason in tables.not_measured(tabs)]
    return f'<p class="meta">Not measured here:</p><ul class="meta">{"".join(lines)}</ul>' if lines else ""


def _precision_map_text(pm: Any, default: Any) -> str:
    """{"a": "int8", "b": "int8", "c": "fp16"}, "fp32" -> "fp16: c; int8: a, b; everything else fp32"."""
    if not isinstance(pm, dict):
        return ""
    by: dict[str, list[str]] = {}
    for g, p in sorted(pm.items()):
        by.setdefault(str(p), []).append(str(g))
    parts = [f"{p}: {', '.join(gs)}" for p, gs in sorted(by.items())]
    if default:
        parts.append(f"everything else {default}")
    return "; ".join(parts)


def variants_frame(records: Sequence[dict[str, Any]]):
    """One row per model (variant key): its name(s) in the records, key, precision, precision map and parents."""
    import pandas as pd

    by_key: dict[str, dict[str, Any]] = {}
    for r in records:
        v = r.get("variant") or {}
        key = str(v.get("key") or v.get("name"))
        if r.get("kind") not in ("bench", "quality") or not key:
            continue
        e = by_key.setdefault(key, {"names": [], "precision": None, "map": None, "default": None,
                                    "parents": v.get("parents") or []})
        if v.get("name") and v["name"] not in e["names"]:
            e["names"].append(str(v["name"]))
        e["precision"] = e["precision"] or v.get("precision")
        if e["map"] is None and v.get("precision_map") is not None:
            e["map"], e["default"] = v.get("precision_map"), v.get("precision_default")
    out = [{"variant": " = ".join(e["names"]) or key, "key": key, "precision": e["precision"] or "",
            "precision map": _precision_map_text(e["map"], e["default"]),
            "parents": " <- ".join(p[:tables.KEY_CHARS] for p in e["parents"])}
           for key, e in sorted(by_key.items(), key=lambda kv: (kv[1]["names"][:1], kv[0]))]
    df = pd.DataFrame(out, columns=["variant", "key", "precision", "precision map", "parents"])
    return df.drop(columns=[c for c in ("precision map", "parents") if c in df and not df[c].astype(bool).any()])


def _bundle_section(rec: dict[str, Any]) -> str:
    v = rec.get("variant") or {}
    lf = serving.load_frame(rec)
    return (html.table(serving.targets_frame(rec), numeric=("measured",), wrap=("figure", "measured"))
            + ("<h3>The HTTP server under concurrent clients</h3>"
               + html.table(lf, numeric=tuple(c for c in lf.columns if c not in ("instances", "threads")))
               if not lf.empty else "")
            + html.notes([f"bundle of {v.get('name')} ({str(v.get('key'))[:12]}), measured by kopt bundle-bench "
                          f"with {rec.get('threads') or 'default'} threads: new processes, a real HTTP client on "
                          "loopback, streamed PCM, the server's audio cache off; TTFA = request sent -> first "
                          "audio byte; throughput = seconds of audio per wall second"]))


def write_report(sources: Sequence[tuple[str, list[dict[str, Any]]]], out: str | Path, *,
                 settings: SelectSettings | None = None, run_by: hist.RunBy = "run_id",
                 sensitivity_file: str | Path | None = None, title: str = "kopt report",
                 store=None, listen: ListenSettings | None = None,
                 progress: Progress | None = None) -> ReportResult:
    """The report folder. With the ``store`` the results came from, variants whose records lack what their
    pass made get it from the store (kopt.report.names). With ``listen``, the page also embeds the check
    sentences rendered by every measured variant whose model is in the store (kopt.report.listen)."""
    settings = settings or SelectSettings()
    progress = progress or NullProgress()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_dir = out / "plots"
    cat = Catalog({k: v.model_dump() for k, v in settings.metrics.items()})
    records = merge_records(r for _, recs in sources for r in recs)
    if store is not None:
        records = with_facts(records, store)
    rows = build_rows(records, catalog=cat, quality_across_machines=settings.quality_across_machines)
    sel = select(rows, settings, cat)
    res = ReportResult(out, selection=sel, rows=rows)
    files = res.files
    multi = len({r.machine_id for r in rows}) > 1

    tabs = tables.provider_tables(sel, settings.speed)
    variants = variants_frame(records)
    with progress.task("tables", total=None):
        full = tables.full_frame(rows, sel)
        summ = tables.summary_frame(rows, sel)
        why = tables.selection_frame(sel)
        for name, df in (("results", full), ("summary", summ), ("selection", why)):
            df.to_csv(out / f"{name}.csv", index=False)
            files.append(out / f"{name}.csv")
        bundle_md = serving.markdown(b) if (b := serving.latest_bundle_record(records)) else ""
        (out / "results.md").write_text(tables.markdown_report(sel, title, settings.speed, variants) + bundle_md,
                                        encoding="utf-8")
        files.append(out / "results.md")
        (out / "selection.json").write_text(json.dumps(sel.as_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        files.append(out / "selection.json")

    page = html.Page(title)
    kinds = Counter(str(r.get("kind")) for r in records)
    machines = {}
    for r in records:
        m = r.get("machine") or {}
        machines.setdefault(str(m.get("id")), m)
    vers = sorted({f"kopt {r.get('versions', {}).get('kopt')}, onnxruntime {r.get('versions', {}).get('onnxruntime')}"
                   for r in records})
    runs = hist.split_runs(sources, run_by)
    res.runs = len(runs)
    page.meta += [
        html.esc(f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(sources)} source(s), "
                 f"{len(records)} records ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), {len(runs)} run(s)"),
        *(html.esc(f"machine {k[:8]}: {m.get('cpu')} x{m.get('cores')} cores, {m.get('system')} {m.get('arch')}")
          for k, m in sorted(machines.items())),
        html.esc("versions: " + "; ".join(vers)) if vers else "",
        html.esc(f"objectives: {', '.join(sel.objectives)}; speed tie tolerance {settings.speed_tie_rel:.0%}"),
    ]

    # Providers where something was measured come first, with cards and plots; providers where every
    # cell was skipped (not on this machine) are one line each, with the reason, not empty plots.
    measured = [t.group for t in tabs if t.measured]
    card_html = []
    for t in tabs:
        if not t.measured:
            continue
        g = t.group
        facts = []
        if g.winner:
            facts.append(("key", g.winner.variant_key[:tables.KEY_CHARS]))
            if g.winner.precision:
                facts.append(("precision", g.winner.precision))
            for label, name in tables.resolve_columns([g.winner]):
                if name and g.winner.value(name) is not None and label in (
                        "RTF median", "speedup", "TTFA ms", "size MB", "RSS MB", "PESQ aligned", "STOI", "DNSMOS"):
                    facts.append((label, fmt(g.winner.value(name))))
        card_html.append(html.card(t.title, g.winner.variant if g.winner else None, facts, g.explanation))
    winners_html = html.cards(card_html) if card_html else '<p class="meta">no bench or quality records</p>'
    winners_html += _not_measured_html(tabs)
    page.add("Winners", winners_html)
    if listen is not None:
        page.add("Listen", _listen_section(records, tabs, listen, plot_dir, res, progress))
    bundle_rec = serving.latest_bundle_record(records)
    if bundle_rec is not None:
        page.add("The published bundle, as its users run it", _bundle_section(bundle_rec))

    # pareto plots
    items = []
    with progress.task("plots", total=len(measured) + 3) as task:
        for i, g in enumerate(measured, 1):
            t = tables.group_title(g, multi)
            p = plots.pareto(g, settings.speed, settings.quality, settings.size,
                             plot_dir / f"pareto-{i:02d}-{_slug(g.provider)}-{g.machine_id[:8]}.png", cat, t)
            files.append(p)
            items.append((p, f"{t}: {settings.speed} vs {settings.quality}, marker area ~ {settings.size}"))
            task.advance()
        if items:
            page.add("Speed vs quality (Pareto frontier per provider)", html.plots(items))

        body = []
        for t in tabs:
            if t.measured:
                df = tables.provider_frame(t)
                body.append(f"<h3>{html.esc(t.title)}</h3>"
                            + html.table(df, row_class=tables.row_classes(t), numeric=_NUMERIC, mono=("key",)))
        body.append(_not_measured_html(tabs))
        body.append(html.notes(["winner rows highlighted; measured rows first, fastest first; files: results.csv "
                                "(every metric, full keys), summary.csv, results.md, selection.json"]
                               + [f"{r.variant} on {r.provider}: quality figures from machine {r.quality_from[:8]}"
                                  for r in rows if r.quality_from]))
        page.add("Variants per provider", "".join(body))
        page.add("Why each variant won or lost",
                 "".join(f"<h3>{html.esc(t.title)}</h3>" + html.table(tables.group_selection_frame(t), mono=("key",))
                         for t in tabs if t.measured) or '<p class="meta">(nothing measured)</p>')
        if not variants.empty:
            page.add("Variants", html.table(variants, mono=("key",), wrap=("precision map", "parents"))
                     + html.notes(["name: the recipe's variant name (or the baseline's ref name); key: the content "
                                   "key of the model in the artifact store"]))

        extra_plots = []
        groups = [(tables.group_title(g, multi), g.rows,
                   g.winner.variant_key if g.winner else None) for g in measured]
        if groups and any(r.value(settings.speed) is not None for r in rows):
            p = plots.rtf_bars(groups, settings.speed, plot_dir / "speed-bars.png", cat)
            files.append(p)
            extra_plots.append((p, f"{settings.speed} per provider (whiskers: p10-p90 of the samples)"))
        task.advance()
        if settings.size:
            p = plots.size_quality(rows, settings.size, settings.quality, plot_dir / "size-quality.png", cat,
                                   winners={g.winner.variant_key for g in sel.groups if g.winner})
            files.append(p)
            extra_plots.append((p, f"{settings.size} vs {settings.quality}"))
        task.advance()
        if extra_plots:
            page.add("Speed and size", html.plots(extra_plots))

        rank = sensitivity.from_file(sensitivity_file) if sensitivity_file else sensitivity.from_records(records)
        if rank:
            ranking, label = rank
            p = plots.ranking(ranking, plot_dir / "sensitivity.png", "quantization sensitivity (most sensitive first)",
                              label)
            files.append(p)
            import pandas as pd

            df = pd.DataFrame([{"rank": i, "name": n, label: fmt(v)} for i, (n, v) in enumerate(ranking, 1)])
            df.to_csv(out / "sensitivity.csv", index=False)
            files.append(out / "sensitivity.csv")
            page.add("Sensitivity ranking", html.plots([(p, f"top {min(25, len(ranking))} of {len(ranking)}")]))
        task.advance()

    if len(runs) > 1:
        with progress.task("history", total=None):
            lf = hist.long_frame(runs, cat, settings.quality_across_machines)
            lf.to_csv(out / "history.csv", index=False)
            files.append(out / "history.csv")
            trends = hist.trend_tables(lf, runs)
            md = [f"# History ({len(runs)} runs)\n"]
            hplots, htables, flat = [], [], []
            for metric, wide in trends.items():
                md.append(f"## {metric}\n\n{wide.map(fmt).reset_index().to_markdown(index=False)}\n")
                if all(row.dropna().nunique() <= 1 for _, row in wide.iterrows()):
                    flat.append(metric)  # nothing moved: a table row in the page, no plot
                    continue
                series = {s: [(run, v) for run, v in row.items()] for s, row in wide.iterrows()}
                p = plots.trend(series, list(wide.columns), metric, plot_dir / f"history-{_slug(metric)}.png", cat)
                files.append(p)
                hplots.append((p, f"{metric} over {len(wide.columns)} runs"))
                htables.append(f"<h3>{html.esc(metric)}</h3>" + html.table(wide.map(fmt).reset_index()))
            (out / "history.md").write_text("\n".join(md), encoding="utf-8")
            files.append(out / "history.md")
            if trends:
                body = html.plots(hplots) + "".join(htables)
                if flat:
                    body += html.notes([f"unchanged over the runs: {', '.join(flat)} (see history.md)"])
                page.add(f"History ({len(runs)} runs)", body)
            else:
                res.notes.append(f"{len(runs)} runs given but no metric was measured in two of them")

    (out / "index.html").write_text(page.render(), encoding="utf-8")
    files.append(out / "index.html")
    return res
