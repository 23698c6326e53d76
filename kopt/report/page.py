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
from kopt.core.results import MachineInfo, RecordLike, ResultRecord
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
_CARD = tables.CARD  # a winner's facts: the catalogue's "card" columns


def _numeric(columns) -> list[str]:
    """The numeric columns of a table, per-language ones ("PESQ aligned ja") included."""
    return [c for c in columns if c in _NUMERIC or str(c).rsplit(" ", 1)[0] in _NUMERIC]


def _listen_section(records: Sequence[ResultRecord], tabs: Sequence[tables.ProviderTable],
                    settings: ListenSettings, plot_dir: Path, res: ReportResult, progress: Progress) -> str:
    """The check sentences as <audio> players grouped by sentence (reference, winner, then every other
    measured variant), and the reference-vs-winner spectrogram."""
    from kopt.report import listen as L

    measured = [t for t in tabs if t.measured]
    target = _listen_target(tabs, settings)
    if target is None:
        return ('<p class="meta">No audio: nothing was measured on '
                + html.esc(settings.winner_provider or "any provider") + ".</p>")
    winner = target.group.winner
    order = list(dict.fromkeys((r.variant_key, r.variant) for t in measured for r in t.rows if r.status == "ok"))
    quality = [r for r in records if r.kind == "quality"]
    ref_key = _reference_key(quality, order)
    voice, settings = _quality_voice_and_languages(quality, settings)
    models, notes = L.models_from(records, order, ref_key, winner.variant_key if winner else None, settings.store)
    if not models:
        where = settings.store.root if settings.store is not None else "no store given"
        res.notes.append(f"listen: no model of these results is available ({where}); pass the build's --artifacts")
        return ('<p class="meta">No audio: none of these variants\' models is in the artifact store '
                f"({html.esc(where)}). Run <code>kopt --artifacts DIR report ...</code> with the store of the build "
                "that made them.</p>")
    voices_path = _voice_pack(settings)
    if voices_path is None:
        res.notes.append("listen: no voice pack (pass --voices)")
        return '<p class="meta">No audio: no voice pack (pass <code>--voices</code>).</p>'
    from kopt.source.voices import load_voices

    lis = L.render(models, load_voices(voices_path), settings, voice=voice, progress=progress)
    notes += lis.notes
    res.notes += [f"listen: {n}" for n in notes]
    res.listen = {"rendered": lis.rendered, "reused": lis.reused, "models": len(models), "notes": notes}
    ref_name = next((m.name for m in models if "reference" in m.role.split()), None)
    return (_players_html(lis, target, ref_name) + _spectrogram_html(lis, ref_name, winner, plot_dir, res)
            + html.notes(notes))


def _listen_target(tabs: Sequence[tables.ProviderTable], settings: ListenSettings) -> tables.ProviderTable | None:
    """The measured table whose winner the players put beside the reference; an error for a provider the
    results lack."""
    known = sorted({t.group.provider for t in tabs})
    if settings.winner_provider is not None and settings.winner_provider not in known:
        from kopt.core.errors import KoptError

        raise KoptError(f"listen provider {settings.winner_provider!r} is not in these results; "
                        f"choose from: {', '.join(known) or '(none)'}")
    return next((t for t in tabs if t.measured and settings.winner_provider in (None, t.group.provider)), None)


def _reference_key(quality: Sequence[ResultRecord], order: Sequence[tuple[str, str]]) -> str | None:
    """The model quality was scored against (the most common reference key), else the variant named reference."""
    ref_keys = Counter(str(r.inputs["reference_key"]) for r in quality if r.inputs.get("reference_key"))
    return ref_keys.most_common(1)[0][0] if ref_keys else next((k for k, n in order if n == "reference"), None)


def _quality_voice_and_languages(quality: Sequence[ResultRecord],
                                 settings: ListenSettings) -> tuple[str | None, ListenSettings]:
    """The voice quality scored the text set's language with, and the settings with the languages quality
    scored (the text set's first) when they name none."""
    from kopt.core.results import language_of
    from kopt.quality.texts import textset_language

    own = textset_language(settings.text_set)
    voice = next((v[0] for r in quality if language_of(r) == own for v in [r.inputs.get("voices") or []] if v), None)
    if not settings.languages and quality:
        import dataclasses

        settings = dataclasses.replace(settings, languages=tuple(dict.fromkeys(
            sorted((language_of(r) for r in quality), key=lambda x: (x != own, x)))))
    return voice, settings


def _voice_pack(settings: ListenSettings) -> Path | None:
    """The voice pack given, else the store's base artifact's."""
    if settings.voices is None and settings.store is not None:
        from kopt.core.base_artifact import BASE_VOICES
        from kopt.core.refs import find

        if (base := find(settings.store, "base")) is not None:
            return base.file(BASE_VOICES)
    return settings.voices


def _players_html(lis, target: tables.ProviderTable, ref_name: str | None) -> str:
    """The head line (voices, reference, winner) and one row of players per sentence."""
    from kopt.core.contract import SAMPLE_RATE

    winner = target.group.winner
    voices_by_lang = dict.fromkeys(f"{lang}: {v}" for lang, v in lis.spoken.values())
    head = (f"Voice {', '.join(voices_by_lang) or lis.voice}; each model with its own durations (as a listener hears it); "
            f"16-bit FLAC at {SAMPLE_RATE // 1000} kHz. "
            + (f"Reference: {ref_name}. " if ref_name else "")
            + (f"Winner on {target.title}: {winner.variant}." if winner else f"No winner on {target.title}."))
    parts = [f'<p class="meta">{html.esc(head)}</p>']
    langs = list(dict.fromkeys(lang for lang, _ in lis.spoken.values()))
    for tid, text in lis.texts:
        players = [html.audio_player(c.model.name, c.model.key[:tables.KEY_CHARS], c.model.role, c.data_uri(),
                                     c.seconds) for c in lis.clips[tid]]
        lang = lis.spoken.get(tid, ("", ""))[0]
        tag = f"[{lang}] " if len(langs) > 1 and lang else ""
        parts.append(html.sentence(f"{tag}{tid}: \u201c{text}\u201d", players))
    return "".join(parts)


def _spectrogram_html(lis, ref_name: str | None, winner, plot_dir: Path, res: ReportResult) -> str:
    """The reference-vs-winner spectrogram plot, when the listening rendered the pair."""
    from kopt.core.contract import SAMPLE_RATE

    if lis.spectrogram is None:
        return ""
    ref_audio, win_audio, tid, aligned = lis.spectrogram
    names = (ref_name or "reference", winner.variant if winner else "winner")
    p = plots.spectrograms(ref_audio, win_audio, SAMPLE_RATE, plot_dir / "spectrogram.png",
                           f"{tid}, voice {lis.voice}", names, aligned)
    res.files.append(p)
    return html.wide_plot(p, f"{tid}: reference vs winner and their difference"
                          + (" (winner fed the reference's durations, so the two are sample-aligned)"
                             if aligned else " (natural durations)"))


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


def variants_frame(records: Sequence[ResultRecord]):
    """One row per model (variant key): its name(s) in the records, key, precision, precision map and parents."""
    import pandas as pd

    by_key: dict[str, dict[str, Any]] = {}
    for r in records:
        v = r.variant
        key = v.ident
        if r.kind not in ("bench", "quality") or not key:
            continue
        e = by_key.setdefault(key, {"names": [], "precision": None, "map": None, "default": None,
                                    "parents": v.parents})
        if v.name and v.name not in e["names"]:
            e["names"].append(v.name)
        e["precision"] = e["precision"] or v.precision
        if e["map"] is None and v.precision_map is not None:
            e["map"], e["default"] = v.precision_map, v.precision_default
    out = [{"variant": " = ".join(e["names"]) or key, "key": key, "precision": e["precision"] or "",
            "precision map": _precision_map_text(e["map"], e["default"]),
            "parents": " <- ".join(p[:tables.KEY_CHARS] for p in e["parents"])}
           for key, e in sorted(by_key.items(), key=lambda kv: (kv[1]["names"][:1], kv[0]))]
    df = pd.DataFrame(out, columns=["variant", "key", "precision", "precision map", "parents"])
    return df.drop(columns=[c for c in ("precision map", "parents") if c in df and not df[c].astype(bool).any()])


def _bundle_section(rec: ResultRecord) -> str:
    v = rec.variant
    lf = serving.load_frame(rec)
    return (html.table(serving.targets_frame(rec), numeric=("measured",), wrap=("figure", "measured"))
            + ("<h3>The HTTP server under concurrent clients</h3>"
               + html.table(lf, numeric=tuple(c for c in lf.columns if c not in ("instances", "threads")))
               if not lf.empty else "")
            + html.notes([f"bundle of {v.name} ({str(v.key)[:12]}), measured by kopt bundle-bench "
                          f"with {rec.threads or 'default'} threads: new processes, a real HTTP client on "
                          "loopback, streamed PCM, the server's audio cache off; TTFA = request sent -> first "
                          "audio byte; throughput = seconds of audio per wall second"]))


@dataclass
class _Report:
    """What the sections of one report share."""

    out: Path
    plot_dir: Path
    settings: SelectSettings
    cat: Catalog
    records: list[ResultRecord]
    rows: list[Row]
    sel: Selection
    tabs: list
    res: "ReportResult"
    page: Any
    progress: Progress

    @property
    def measured(self) -> list:
        return [t.group for t in self.tabs if t.measured]

    @property
    def multi(self) -> bool:
        return len({r.machine_id for r in self.rows}) > 1


def write_report(sources: Sequence[tuple[str, Sequence[RecordLike]]], out: str | Path, *,
                 settings: SelectSettings | None = None, run_by: hist.RunBy = "run_id",
                 sensitivity_file: str | Path | None = None, title: str = "kopt report",
                 store=None, listen: ListenSettings | None = None,
                 progress: Progress | None = None) -> ReportResult:
    """The report folder. With the ``store`` the results came from, variants whose records lack what their
    pass made get it from the store (kopt.report.names). With ``listen``, the page also embeds the check
    sentences rendered by every measured variant whose model is in the store (kopt.report.listen)."""
    settings = settings or SelectSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cat = Catalog({k: v.model_dump() for k, v in settings.metrics.items()})
    records = merge_records(r for _, recs in sources for r in recs)
    if store is not None:
        records = with_facts(records, store)
    rows = build_rows(records, catalog=cat, quality_across_machines=settings.quality_across_machines)
    sel = select(rows, settings, cat)
    res = ReportResult(out, selection=sel, rows=rows)
    r = _Report(out, out / "plots", settings, cat, records, rows, sel, tables.provider_tables(sel, settings.speed),
                res, html.Page(title), progress or NullProgress())
    variants = variants_frame(records)
    runs = hist.split_runs(sources, run_by)
    res.runs = len(runs)
    _table_files(r, title, variants)
    _page_meta(r, len(sources), len(runs))
    r.page.add("Winners", _winners_html(r))
    if listen is not None:
        r.page.add("Listen", _listen_section(records, r.tabs, listen, r.plot_dir, res, r.progress))
    bundle_rec = serving.latest_bundle_record(records)
    if bundle_rec is not None:
        r.page.add("The published bundle, as its users run it", _bundle_section(bundle_rec))
    with r.progress.task("plots", total=len(r.measured) + 3) as task:
        _frontier_section(r, task)
        _tables_sections(r, variants)
        _speed_size_section(r, task)
        _sensitivity_section(r, sensitivity_file, task)
    if len(runs) > 1:
        _history_section(r, runs)
    (out / "index.html").write_text(r.page.render(), encoding="utf-8")
    res.files.append(out / "index.html")
    return res


def _table_files(r: _Report, title: str, variants) -> None:
    """results.csv, summary.csv, selection.csv, results.md (with the bundle's figures) and selection.json."""
    out, files, sel = r.out, r.res.files, r.sel
    with r.progress.task("tables", total=None):
        for name, df in (("results", tables.full_frame(r.rows, sel)), ("summary", tables.summary_frame(r.rows, sel)),
                         ("selection", tables.selection_frame(sel))):
            df.to_csv(out / f"{name}.csv", index=False)
            files.append(out / f"{name}.csv")
        bundle_md = serving.markdown(b) if (b := serving.latest_bundle_record(r.records)) else ""
        (out / "results.md").write_text(tables.markdown_report(sel, title, r.settings.speed, variants)
                                        + bundle_md, encoding="utf-8")
        files.append(out / "results.md")
        (out / "selection.json").write_text(json.dumps(sel.as_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        files.append(out / "selection.json")


def _page_meta(r: _Report, n_sources: int, n_runs: int) -> None:
    records = r.records
    kinds = Counter(x.kind for x in records)
    machines: dict[str, MachineInfo] = {}
    for x in records:
        machines.setdefault(x.machine.id, x.machine)
    vers = sorted({f"kopt {x.versions.get('kopt')}, onnxruntime {x.versions.get('onnxruntime')}" for x in records})
    r.page.meta += [
        html.esc(f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {n_sources} source(s), "
                 f"{len(records)} records ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), {n_runs} run(s)"),
        *(html.esc(f"machine {k[:8]}: {m.cpu} x{m.cores} cores, {m.system} {m.arch}")
          for k, m in sorted(machines.items())),
        html.esc("versions: " + "; ".join(vers)) if vers else "",
        html.esc(f"objectives: {', '.join(r.sel.objectives)}; speed tie tolerance {r.settings.speed_tie_rel:.0%}"),
    ]


def _winners_html(r: _Report) -> str:
    """Providers where something was measured come first, with cards and plots; providers where every
    cell was skipped (not on this machine) are one line each, with the reason, not empty plots."""
    card_html = []
    for t in r.tabs:
        if not t.measured:
            continue
        g = t.group
        facts = []
        if g.winner:
            facts.append(("key", g.winner.variant_key[:tables.KEY_CHARS]))
            if g.winner.precision:
                facts.append(("precision", g.winner.precision))
            for label, name in tables.resolve_columns([g.winner]):
                if name and g.winner.value(name) is not None and (label in _CARD or label.rsplit(" ", 1)[0] in _CARD):
                    facts.append((label, fmt(g.winner.value(name))))
        card_html.append(html.card(t.title, g.winner.variant if g.winner else None, facts, g.explanation))
    winners_html = html.cards(card_html) if card_html else '<p class="meta">no bench or quality records</p>'
    return winners_html + _not_measured_html(r.tabs)


def _frontier_section(r: _Report, task) -> None:
    s, items = r.settings, []
    for i, g in enumerate(r.measured, 1):
        t = tables.group_title(g, r.multi)
        p = plots.pareto(g, s.speed, s.quality, s.size,
                         r.plot_dir / f"pareto-{i:02d}-{_slug(g.provider)}-{g.machine_id[:8]}.png", r.cat, t)
        r.res.files.append(p)
        items.append((p, f"{t}: {s.speed} vs {s.quality}, marker area ~ {s.size}"))
        task.advance()
    if items:
        r.page.add("Speed vs quality (Pareto frontier per provider)", html.plots(items))


def _tables_sections(r: _Report, variants) -> None:
    body = []
    for t in r.tabs:
        if t.measured:
            df = tables.provider_frame(t)
            body.append(f"<h3>{html.esc(t.title)}</h3>"
                        + html.table(df, row_class=tables.row_classes(t), numeric=_numeric(df.columns), mono=("key",)))
    body.append(_not_measured_html(r.tabs))
    body.append(html.notes(["winner rows highlighted; measured rows first, fastest first; files: results.csv "
                            "(every metric, full keys), summary.csv, results.md, selection.json"]
                           + [f"{x.variant} on {x.provider}: quality figures from machine {x.quality_from[:8]}"
                              for x in r.rows if x.quality_from]))
    r.page.add("Variants per provider", "".join(body))
    scaling = [(t.title, df) for t in r.tabs if t.measured and (df := tables.group_scaling_frame(t)) is not None]
    if scaling:
        r.page.add("Thread scaling", "".join(
            f"<h3>{html.esc(title)}</h3>" + html.table(df, numeric=tuple(c for c in df.columns if c not in (
                "variant", "key")), mono=("key",)) for title, df in scaling) + html.notes([tables.SCALING_NOTE]))
    r.page.add("Why each variant won or lost",
               "".join(f"<h3>{html.esc(t.title)}</h3>" + html.table(tables.group_selection_frame(t), mono=("key",))
                       for t in r.tabs if t.measured) or '<p class="meta">(nothing measured)</p>')
    if not variants.empty:
        r.page.add("Variants", html.table(variants, mono=("key",), wrap=("precision map", "parents"))
                   + html.notes(["name: the recipe's variant name (or the baseline's ref name); key: the content "
                                 "key of the model in the artifact store"]))


def _speed_size_section(r: _Report, task) -> None:
    s, files, extra_plots = r.settings, r.res.files, []
    groups = [(tables.group_title(g, r.multi), g.rows,
               g.winner.variant_key if g.winner else None) for g in r.measured]
    if groups and any(x.value(s.speed) is not None for x in r.rows):
        p = plots.rtf_bars(groups, s.speed, r.plot_dir / "speed-bars.png", r.cat)
        files.append(p)
        extra_plots.append((p, f"{s.speed} per provider (whiskers: p10-p90 of the samples)"))
    task.advance()
    if s.size:
        p = plots.size_quality(r.rows, s.size, s.quality, r.plot_dir / "size-quality.png", r.cat,
                               winners={g.winner.variant_key for g in r.sel.groups if g.winner})
        files.append(p)
        extra_plots.append((p, f"{s.size} vs {s.quality}"))
    task.advance()
    if extra_plots:
        r.page.add("Speed and size", html.plots(extra_plots))


def _sensitivity_section(r: _Report, sensitivity_file, task) -> None:
    rank = sensitivity.from_file(sensitivity_file) if sensitivity_file else sensitivity.from_records(r.records)
    if rank:
        import pandas as pd

        ranking, label = rank
        p = plots.ranking(ranking, r.plot_dir / "sensitivity.png", "quantization sensitivity (most sensitive first)",
                          label)
        r.res.files.append(p)
        df = pd.DataFrame([{"rank": i, "name": n, label: fmt(v)} for i, (n, v) in enumerate(ranking, 1)])
        df.to_csv(r.out / "sensitivity.csv", index=False)
        r.res.files.append(r.out / "sensitivity.csv")
        r.page.add("Sensitivity ranking", html.plots([(p, f"top {min(25, len(ranking))} of {len(ranking)}")]))
    task.advance()


def _history_section(r: _Report, runs) -> None:
    out, files = r.out, r.res.files
    with r.progress.task("history", total=None):
        lf = hist.long_frame(runs, r.cat, r.settings.quality_across_machines)
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
            p = plots.trend(series, list(wide.columns), metric, r.plot_dir / f"history-{_slug(metric)}.png", r.cat)
            files.append(p)
            hplots.append((p, f"{metric} over {len(wide.columns)} runs"))
            htables.append(f"<h3>{html.esc(metric)}</h3>" + html.table(wide.map(fmt).reset_index()))
        (out / "history.md").write_text("\n".join(md), encoding="utf-8")
        files.append(out / "history.md")
        if trends:
            body = html.plots(hplots) + "".join(htables)
            if flat:
                body += html.notes([f"unchanged over the runs: {', '.join(flat)} (see history.md)"])
            r.page.add(f"History ({len(runs)} runs)", body)
        else:
            r.res.notes.append(f"{len(runs)} runs given but no metric was measured in two of them")
