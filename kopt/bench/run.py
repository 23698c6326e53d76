"""A benchmark run: every (variant, provider) cell in its own worker, measured interleaved.

Order of work: for each cell, check the provider is in this onnxruntime build (else *skipped*),
spawn a worker, load the model through the runtime (cold session creation) and run the first
inference. Then warm-up, then ``repeats`` rounds; each round visits every live cell (in a rotating
order) and times every text once, so a noisy machine hits all cells alike. Then TTFA rounds, node
placement and peak RSS. A worker that crashes, hangs or runs out of memory fails only its own cell.
Ratios are against the baseline variant on the same provider config, within this one run.

A preset with its own worker environment (``ProviderConfig.env``, e.g. OpenVINO) runs its workers under
the interpreter ``settings.worker_python`` names for it, probed first (kopt.bench.envs); without one, or
when that build lacks the EP, its cells are skipped with the reason.

The warm-up round is also kept as *first-seen* figures: each text's first run in a fresh session (the
first text excluded: the load already ran it), and the first TTFA run. Providers that tune per input
shape (cuDNN's conv algorithm search, TensorRT's engine builds) pay there, and the timed rounds,
which repeat shapes they have met, never show it.

Thread scaling comes last, after the main workers are closed (so memory never holds two sets): for
each extra count of ``scaling_threads`` (the main ``threads`` is one of the figures already; counts
above the machine's cores are recorded as skipped), fresh workers load every CPU-provider cell that
is still ok with that many intra-op threads, then warm-up and ``scaling_repeats`` interleaved
rounds, exactly as above. Other providers are left out: intra-op threads only size the CPU
provider's pool (and the pool of an EP that sizes its own from them, ``threads_option``). A cell that fails at an extra count records why there; its main figures stand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from kopt.bench.envs import WorkerEnv, cell_availability, environ, probe_all
from kopt.bench.handle import CellFailed, WorkerHandle
from kopt.bench.settings import BenchSettings
from kopt.bench.stats import ratio, summary
from kopt.bench.textset import TextItem, load_textset
from kopt.bench.variants import Variant
from kopt.core.contract import SAMPLE_RATE
from kopt.core.env import machine
from kopt.core.progress import NullProgress
from kopt.core.providers import ProviderConfig, available_providers, get_many
from kopt.core.results import make_record


@dataclass
class Cell:
    variant: Variant
    provider: ProviderConfig
    status: str = "ok"
    reason: str | None = None
    worker: WorkerHandle | None = None
    load: dict[str, Any] = field(default_factory=dict)
    first: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    first_seen: list[dict[str, Any]] | None = None  # the first warm-up round: each text's first run
    ttfa_first: float | None = None  # the untimed first TTFA run
    ttfa: list[float] = field(default_factory=list)
    ttfa_error: str | None = None
    partition: dict[str, Any] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    scaling: dict[int, "Cell"] = field(default_factory=dict)  # extra thread count -> its own cell (worker, runs)

    @property
    def live(self) -> bool:
        return self.status == "ok" and self.worker is not None

    def fail(self, reason: str) -> None:
        self.status, self.reason = "failed", reason
        if self.worker is not None:
            self.worker.kill()


def run_bench(variants: Sequence[Variant], settings: BenchSettings, *, voices_path: str, vocab: dict[str, int],
              run_id: str, progress=None, worker_argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Measure every cell and return one result record per cell (ok, skipped or failed)."""
    from kopt.core.voicepack import pack_voice

    progress = progress or NullProgress()
    _baseline(variants, settings)  # fail fast on a baseline that is not among the variants
    textset = load_textset(settings.text_set)
    items = textset.select(settings.categories, settings.texts)
    voice = settings.voice or pack_voice(voices_path)[0]
    avail = available_providers()
    provs = get_many(settings.providers)
    wanted = {p.env for p in provs if p.env}
    envs = probe_all({k: v for k, v in settings.worker_python.items() if k in wanted})
    cells = [Cell(v, p) for p in provs for v in variants]
    for c in cells:
        ok, why = cell_availability(c.provider, avail, envs)
        if not ok:
            c.status, c.reason = "skipped", why
    job = _Job(settings, voices_path, vocab, voice, tuple(items), worker_argv, envs)
    try:
        _timed(cells, job, settings.threads, settings.repeats, "", progress)
        if settings.ttfa_repeats:
            _ttfa(cells, settings, textset.ttfa_text, voice, textset.language, progress)
        for c in cells:
            if not c.live:
                continue
            try:
                if settings.partition:
                    c.partition = c.worker.request("partition", ids=items[0].ids, strict=True)
                    c.partition.pop("ok", None)
                c.stats = c.worker.request("stats")
            except CellFailed as e:
                c.fail(str(e))
    finally:
        _close(cells)
    _scaling(cells, job, progress)
    records = [_record(c, cells, variants, settings, textset, items, voice, run_id, envs) for c in cells]
    return records


@dataclass(frozen=True)
class _Job:
    """What every worker of one run loads and runs, at whatever thread count."""

    settings: BenchSettings
    voices_path: str
    vocab: dict[str, int]
    voice: str
    items: tuple[TextItem, ...]
    argv: Sequence[str] | None
    envs: Mapping[str, WorkerEnv] = field(default_factory=dict)

    def worker(self, provider: ProviderConfig) -> tuple[Sequence[str] | None, dict[str, str]]:
        """(argv, extra environment) of a worker for ``provider``: its worker environment's interpreter
        when it has one (an explicit ``argv``, a test's stand-in, wins)."""
        env = self.envs.get(provider.env) if provider.env else None
        if self.argv is not None or env is None:
            return self.argv, {}
        return env.argv(), environ()

    @property
    def texts(self) -> list[list[Any]]:
        return [[it.id, it.ids] for it in self.items]


def _timed(cells: list[Cell], job: _Job, threads: int, repeats: int, label: str, progress) -> None:
    """Start a worker per ok cell with ``threads`` intra-op threads, then warm-up and ``repeats`` timed
    rounds, interleaved; the runs land in each cell's ``runs``."""
    s, texts = job.settings, job.texts
    live = [c for c in cells if c.status == "ok"]
    with progress.task("loading cells" + label, total=len(live)) as t:
        for c in live:
            _start(c, s, job, threads)
            t.advance()

    def run(c: Cell) -> dict[str, Any]:
        return c.worker.request("run", texts=texts, voice=job.voice, speed=s.speed)

    def first_seen(c: Cell, rep: dict[str, Any]) -> None:
        if c.first_seen is None:  # the first warm-up round only
            c.first_seen = [r for r in rep["runs"] if r["id"] != job.items[0].id]

    _rounds(cells, "warm-up" + label, s.warmup, run, first_seen, progress)
    _rounds(cells, "timing" + label, repeats, run, lambda c, r: c.runs.extend(r["runs"]), progress)


def _close(cells: Sequence[Cell]) -> None:
    for c in cells:
        if c.worker is not None:
            c.worker.close()


def scaling_plan(s: BenchSettings, cores: int) -> tuple[list[int], dict[int, str]]:
    """(extra thread counts to measure, {count: why it is skipped}): the ``scaling_threads`` other than the
    main ``threads``; those above the machine's ``cores`` are skipped."""
    extra = sorted(set(s.scaling_threads) - {s.threads})
    skipped = {n: f"more threads than the machine's {cores} cores" for n in extra if n > cores}
    return [n for n in extra if n not in skipped], skipped


def _scaling(cells: list[Cell], job: _Job, progress) -> None:
    """Time every ok CPU-provider cell again at each extra thread count, in fresh workers (one count at a
    time, the cells interleaved); a failure is kept in that count's cell, never the main one."""
    counts, _ = scaling_plan(job.settings, int(machine()["cores"]))
    cpu = [c for c in cells if c.status == "ok" and c.provider.thread_bound]
    for n in counts if cpu else ():
        shadows = [Cell(c.variant, c.provider) for c in cpu]
        for c, sh in zip(cpu, shadows):
            c.scaling[n] = sh
        try:
            _timed(shadows, job, n, job.settings.scaling_repeats, f" ({n} thread{'s' if n > 1 else ''})", progress)
        finally:
            _close(shadows)


def _start(c: Cell, s: BenchSettings, job: _Job, threads: int) -> None:
    argv, environ_ = job.worker(c.provider)
    c.worker = WorkerHandle(argv, memory_mb=s.memory_limit_mb, timeout_s=s.timeout_s, environ=environ_)
    first_item = job.items[0]
    try:
        c.load = c.worker.request("load", model=str(c.variant.path), voices=str(job.voices_path), vocab=job.vocab,
                                  providers=c.provider.ort_providers(threads), ep=c.provider.ep, threads=threads,
                                  voice=job.voice)
        c.first = c.worker.request("run", texts=[[first_item.id, first_item.ids]], voice=job.voice,
                                   speed=s.speed)["runs"][0]
    except CellFailed as e:
        c.fail(str(e))


def _rounds(cells: list[Cell], what: str, n: int, call, keep, progress) -> None:
    with progress.task(what, total=n) as t:
        for r in range(n):
            live = [c for c in cells if c.live]
            if not live:
                return
            k = r % len(live)
            for c in live[k:] + live[:k]:  # rotate who goes first each round
                try:
                    rep = call(c)
                    if keep:
                        keep(c, rep)
                except CellFailed as e:
                    c.fail(str(e))
            t.advance()


def _ttfa(cells: list[Cell], s: BenchSettings, text: str, voice: str, lang: str | None, progress) -> None:
    def call(c: Cell):
        if c.ttfa_error:
            return None
        try:
            return c.worker.request("ttfa", text=text, voice=voice, speed=s.speed, lang=lang)
        except CellFailed as e:
            if c.worker.dead:  # the worker died: the cell failed
                raise
            c.ttfa_error = str(e)  # e.g. G2P not installed: TTFA is missing, the rest stands
            return None

    def first(c: Cell, r: dict[str, Any] | None) -> None:
        if r is not None:
            c.ttfa_first = r["seconds"]

    _rounds(cells, "TTFA warm-up", 1, call, first, progress)
    _rounds(cells, "TTFA", s.ttfa_repeats, call, lambda c, r: r is not None and c.ttfa.append(r["seconds"]), progress)


_SPREAD = ("p10", "p90", "min", "max", "std", "n")  # what a record's spread keeps of a summary


def _rtf(runs: Sequence[dict[str, Any]]) -> list[float]:
    return [r["seconds"] / (r["samples"] / SAMPLE_RATE) for r in runs if r["samples"]]


def _metrics(c: Cell, items: Sequence[TextItem]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    cat = {it.id: it.category for it in items}
    rtf = _rtf(c.runs)
    m: dict[str, Any] = {"size_mb": c.variant.size_mb, "load_s": c.load.get("load_s"),
                         "first_infer_s": c.first.get("seconds")}
    rs = summary(rtf)
    m["rtf_median"], m["rtf_p90"] = rs["median"], rs["p90"]
    per_text: dict[str, Any] = {}
    for category in ("short", "medium", "long"):
        vals = _rtf([r for r in c.runs if cat.get(r["id"]) == category])
        if vals:
            m[f"rtf_{category}_median"] = summary(vals)["median"]
    for it in items:
        runs = [r for r in c.runs if r["id"] == it.id]
        if runs:
            sec = summary([r["seconds"] for r in runs])
            per_text[it.id] = {"tokens": len(it.tokens), "audio_s": runs[0]["samples"] / SAMPLE_RATE,
                               "infer_s_median": sec["median"], "infer_s_p90": sec["p90"], "n": sec["n"]}
    ts = summary([x * 1000 for x in c.ttfa])
    m["ttfa_ms_median"], m["ttfa_ms_p90"] = ts["median"], ts["p90"]
    fs = _rtf(c.first_seen or [])
    if fs and c.first_seen:
        m["rtf_first_seen_median"] = summary(fs)["median"]
        m["first_seen_s_max"] = max(r["seconds"] for r in c.first_seen)
        for r in c.first_seen:
            if r["id"] in per_text:
                per_text[r["id"]]["first_seen_s"] = r["seconds"]
    if c.ttfa_first is not None:
        m["ttfa_ms_first"] = c.ttfa_first * 1000
    m["rss_peak_mb"] = c.stats.get("rss_peak_mb")
    m["rss_loaded_mb"] = c.load.get("rss_mb")
    spread = {}
    if rs["n"]:
        spread["rtf"] = {k: rs[k] for k in _SPREAD}
    if ts["n"]:
        spread["ttfa_ms"] = {k: ts[k] for k in _SPREAD}
    return m, spread, per_text


def _scaling_figures(c: Cell, s: BenchSettings) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Metrics ``rtf_threads_<n>_median`` (null where that count failed), their spread ``rtf_threads_<n>``,
    and ``extra["thread_scaling"]``: {"<n>": {status, rtf_median, rtf_p90, n, repeats, speedup_vs_1, main}}
    or {status: failed|skipped, reason}, for the main count (when set) and every scaling count."""
    if not c.provider.thread_bound or c.status != "ok" or not s.scaling_threads:
        return {}, {}, {}
    _, skipped = scaling_plan(s, int(machine()["cores"]))
    cells = {**c.scaling, **({s.threads: c} if s.threads >= 1 else {})}
    rtf = {n: summary(_rtf(x.runs)) for n, x in cells.items() if x.status == "ok"}
    m: dict[str, Any] = {}
    spread: dict[str, Any] = {}
    table: dict[str, Any] = {}
    for n in sorted({*cells, *skipped}):
        if n in skipped:
            table[str(n)] = {"status": "skipped", "reason": skipped[n]}
        elif n not in rtf:
            m[f"rtf_threads_{n}_median"] = None
            table[str(n)] = {"status": "failed", "reason": cells[n].reason}
        else:
            rs = rtf[n]
            m[f"rtf_threads_{n}_median"] = rs["median"]
            if rs["n"]:
                spread[f"rtf_threads_{n}"] = {k: rs[k] for k in _SPREAD}
            table[str(n)] = {"status": "ok", "rtf_median": rs["median"], "rtf_p90": rs["p90"], "n": rs["n"],
                             "repeats": s.repeats if cells[n] is c else s.scaling_repeats, "main": cells[n] is c,
                             "speedup_vs_1": ratio(rtf[1]["median"], rs["median"]) if 1 in rtf else None}
    return m, spread, {"thread_scaling": table}


def _record(c: Cell, cells: list[Cell], variants: Sequence[Variant], s: BenchSettings, textset, items, voice: str,
            run_id: str, envs: Mapping[str, WorkerEnv]) -> dict[str, Any]:
    prov = {**c.provider.as_dict(), "status": c.status, "reason": c.reason}
    env = envs.get(c.provider.env) if c.provider.env else None
    inputs = {"model_sha256": c.variant.sha256, **textset.as_inputs(), "texts": [it.id for it in items],
              "voice": voice, "speed": s.speed, "ttfa_language": textset.language}
    if c.status == "skipped":
        return make_record("bench", run_id=run_id, variant=c.variant.as_dict(), provider=prov,
                           metrics={"size_mb": c.variant.size_mb}, threads=s.threads, inputs=inputs)
    m, spread, per_text = _metrics(c, items)
    baseline = _baseline(variants, s)
    base_cell = next((b for b in cells if b.variant is baseline and b.provider is c.provider and b.status == "ok"), None)
    if base_cell is not None:
        bm, _, _ = _metrics(base_cell, items)
        m["speedup_vs_baseline"] = ratio(bm["rtf_median"], m["rtf_median"])
        m["size_ratio_vs_baseline"] = ratio(m["size_mb"], bm["size_mb"])
        m["rss_ratio_vs_baseline"] = ratio(m["rss_peak_mb"], bm["rss_peak_mb"])
        m["ttfa_ratio_vs_baseline"] = ratio(m["ttfa_ms_median"], bm["ttfa_ms_median"])
    extra: dict[str, Any] = {
        "baseline": baseline.name if baseline else None, "repeats": s.repeats, "warmup": s.warmup,
        "ttfa_repeats": s.ttfa_repeats, "per_text": per_text, "session_providers": c.load.get("providers"),
        "memory_limit_mb": s.memory_limit_mb, "timeout_s": s.timeout_s, "interleaved": True,
        "runtime": "kokoro_runtime.Synthesizer (run_tokens for RTF, stream for TTFA)",
    }
    if c.load.get("token_len") is not None:
        extra["token_len"] = c.load["token_len"]
    if env is not None:  # the worker's own onnxruntime, not the parent's (versions.onnxruntime)
        extra["worker_env"] = env.as_dict()
    if c.ttfa_error:
        extra["ttfa_error"] = c.ttfa_error
    sm, sspread, sextra = _scaling_figures(c, s)
    m.update(sm)
    spread.update(sspread)
    extra.update(sextra)
    if c.partition:
        extra["partition"] = c.partition
    if c.stats.get("vm_hwm_mb") is not None:
        extra["vm_hwm_mb"] = c.stats["vm_hwm_mb"]
    return make_record("bench", run_id=run_id, variant=c.variant.as_dict(), provider=prov, metrics=m,
                       threads=s.threads, inputs=inputs, spread=spread, extra=extra)


def _baseline(variants: Sequence[Variant], s: BenchSettings) -> Variant | None:
    if not variants:
        return None
    if s.baseline is None:
        return variants[0]
    for v in variants:
        if s.baseline in (v.name, v.key, str(v.path)):
            return v
    from kopt.core.errors import KoptError

    raise KoptError(f"baseline {s.baseline!r} is not one of the variants: {', '.join(v.name for v in variants)}")
