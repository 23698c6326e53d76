"""Join bench and quality records into one row per (machine, variant, provider).

Bench records are per (variant, provider) and machine; quality records are per variant and language (usually
measured on CPU). They join on the variant key within one machine id: quality records for the same provider
config are preferred, then those measured on CPUExecutionProvider, then any. Records from several runs or
shards are merged first: for each (kind, machine, variant key, provider config, language) the latest record
wins, so re-runs supersede old figures.

Languages: a row's quality figures are the worst language's (per the catalogue's direction: the lowest
PESQ, the highest MCD, the per-sentence minimum of the worst language), so a constraint holds only when
every language meets it; each language's own figures are beside them as ``<metric>@<language>``
(``pesq_wb_aligned@ja``), and ``worst_language`` says which language set each figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from kopt.core.hashing import canonical_json
from kopt.core.results import RecordLike, ResultRecord, as_records, language_of
from kopt.select.metrics import LANGUAGE_SEP, Catalog, is_number

JOINED_KINDS = ("bench", "quality")
CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class Row:
    machine_id: str
    machine: str  # a short human label (cpu, cores)
    variant: str
    variant_key: str
    precision: str | None
    parents: tuple[str, ...]
    provider: str  # provider config name (what the matrix is split on)
    status: str  # ok | skipped | failed
    reason: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    spread: dict[str, Any] = field(default_factory=dict)
    run_ids: tuple[str, ...] = ()
    time: str = ""
    quality_from: str | None = None  # machine id the quality figures came from, when not this one
    languages: tuple[str, ...] = ()  # the languages its quality figures cover
    worst_language: dict[str, str] = field(default_factory=dict)  # quality metric -> the language that set it

    @property
    def cell(self) -> tuple[str, str, str]:
        return (self.machine_id, self.variant_key, self.provider)

    def value(self, metric: str) -> Any:
        return self.metrics.get(metric)


Cell = tuple[str, str, str, str, str]  # (kind, machine id, variant key, provider config, language)


def cell_of(rec: ResultRecord) -> Cell:
    """(kind, machine id, variant key, provider config, language)."""
    return (rec.kind, rec.machine.id, rec.variant.ident, rec.provider.label, language_of(rec))


def merge_records(records: Iterable[RecordLike]) -> list[ResultRecord]:
    """Merge records from several files/shards: exact duplicates dropped, stable canonical order."""
    seen: dict[str, ResultRecord] = {}
    for r in as_records(records):
        seen.setdefault(canonical_json(r.as_dict()), r)
    return [r for _, r in sorted(seen.items(), key=lambda kv: (cell_of(kv[1]), kv[1].time, kv[0]))]


def latest(records: Iterable[RecordLike]) -> dict[Cell, ResultRecord]:
    """The newest record per (kind, machine, variant, provider, language); on equal times the later one
    read wins."""
    out: dict[Cell, ResultRecord] = {}
    for r in as_records(records):
        c = cell_of(r)
        if c not in out or r.time >= out[c].time:
            out[c] = r
    return out


def build_rows(records: Iterable[RecordLike], *, catalog: Catalog | None = None,
               quality_across_machines: bool = False) -> list[Row]:
    """Rows for every (machine, variant, provider) that has a bench record, plus quality-only rows for
    variants measured for quality but not benchmarked on that machine. Records are the models
    read_records returns, or the dicts make_record writes (validated here)."""
    cat = catalog or Catalog()
    recs = [r for r in as_records(records) if r.kind in JOINED_KINDS]
    last = latest(recs)
    bench = {c[1:4]: r for c, r in sorted(last.items()) if c[0] == "bench"}
    # (machine, variant) -> provider -> language -> record
    quality: dict[tuple[str, str], dict[str, dict[str, ResultRecord]]] = {}
    for c, r in last.items():
        if c[0] == "quality":
            quality.setdefault((c[1], c[2]), {}).setdefault(c[3], {})[c[4]] = r
    rows: list[Row] = []

    def pick_quality(machine_id: str, vkey: str, provider: str) -> tuple[dict[str, ResultRecord] | None,
                                                                         str | None]:
        cands = quality.get((machine_id, vkey))
        src = None
        if not cands and quality_across_machines:
            others = sorted(m for (m, k) in quality if k == vkey and m != machine_id)
            if others:
                cands, src = quality[(others[0], vkey)], others[0]
        if not cands:
            return None, None
        if provider in cands:
            return cands[provider], src
        cpu = sorted(c for c, by_lang in cands.items()
                     if any(r.provider.name == CPU for r in by_lang.values()) or c == CPU)
        return cands[(cpu or sorted(cands))[0]], src

    for (mid, vkey, prov), b in bench.items():
        q, src = pick_quality(mid, vkey, prov)
        rows.append(_row(b, q, src, cat))
    benched = {(mid, vkey) for (mid, vkey, _) in bench}
    for (mid, vkey), cands in quality.items():
        if (mid, vkey) in benched:
            continue
        for prov in sorted(cands):
            rows.append(_row(None, cands[prov], None, cat))
    return sorted(rows, key=lambda r: (r.machine_id, r.provider, r.variant, r.variant_key))


_RANK = {"ok": 0, "skipped": 1, "failed": 2}


def worst_of(by_language: dict[str, dict[str, Any]], cat: Catalog) -> tuple[dict[str, Any], dict[str, str]]:
    """One figure per metric over the languages: the worst by the catalogue's direction; a metric
    some language lacks is not measured (None) for quality metrics; an uncatalogued or info figure
    is the first language's. Also which language set each quality figure (when there are several)."""
    langs = list(by_language)
    out: dict[str, Any] = {}
    who: dict[str, str] = {}
    names = list(dict.fromkeys(k for lang in langs for k in by_language[lang]))
    for name in names:
        meta = cat.get(name)
        vals = {lang: by_language[lang].get(name) for lang in langs}
        if meta is None or meta.kind != "quality":
            out[name] = next((v for v in vals.values() if v is not None), None)
            continue
        nums = {lang: float(v) for lang, v in vals.items() if v is not None and is_number(v)}
        if len(nums) < len(langs):
            out[name] = None
            if len(langs) > 1:
                who[name] = next(lang for lang in langs if lang not in nums)
            continue
        lang = min(nums, key=lambda x: (meta.goodness(nums[x]), langs.index(x)))
        out[name] = nums[lang]
        if len(langs) > 1:
            who[name] = lang
    return out, who


def _row(b: ResultRecord | None, qs: dict[str, ResultRecord] | None, q_src: str | None, cat: Catalog) -> Row:
    qs = qs or {}
    q = next(iter(qs.values()), None)
    base = b if b is not None else q
    assert base is not None
    v, p = base.variant, base.provider
    metrics: dict[str, Any] = {}
    spread: dict[str, Any] = {}
    status, reason = p.status, p.reason
    runs = []
    languages: tuple[str, ...] = ()
    who: dict[str, str] = {}
    if qs:
        order = sorted(qs, key=lambda lang: (lang != "en-us", lang))  # English first, then by code
        languages = tuple(order)
        per: dict[str, dict[str, Any]] = {lang: dict(qs[lang].metrics) for lang in order}
        worst, who = worst_of(per, cat)
        metrics.update(worst)
        for lang in order:
            metrics.update({f"{k}{LANGUAGE_SEP}{lang}": val for k, val in per[lang].items()
                            if (cat.get(k) is not None and cat.get(k).kind == "quality")})  # type: ignore[union-attr]
        for lang in order:
            qr = qs[lang]
            runs.append(qr.run_id)
            st = qr.provider.status
            if _RANK.get(st, 2) > _RANK.get(status, 2) or (b is None and lang == order[0]):
                status, reason = st, qr.provider.reason
                if reason and len(order) > 1:
                    reason = f"{lang}: {reason}"
                if b is not None and reason:
                    reason = f"quality: {reason}"
    if b is not None:
        runs.insert(0, b.run_id)
        for k, val in b.metrics.items():
            meta = cat.get(k)
            if q is not None and meta is not None and meta.kind == "quality" and k in metrics:
                continue  # the quality run's figure of a quality metric wins
            metrics[k] = val
        spread.update(b.spread or {})
    return Row(
        machine_id=base.machine.id, machine=base.machine.label, variant=str(v.name or v.key),
        variant_key=v.ident, precision=v.precision, parents=tuple(v.parents), provider=p.label,
        status=status, reason=reason, metrics=metrics, spread=spread,
        run_ids=tuple(dict.fromkeys(runs)), time=base.time, quality_from=q_src,
        languages=languages, worst_language=who,
    )


def machines(rows: Iterable[Row]) -> dict[str, str]:
    return {r.machine_id: r.machine for r in rows}
