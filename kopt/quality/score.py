"""Scoring a variant against the fp32 reference on the same tokens, voice and speed.

Two comparisons, reported side by side:
  * **aligned**: the reference's predicted per-token durations are fed to the variant, so both
    waveforms are sample-aligned and the metrics measure acoustic fidelity alone;
  * **natural**: each model predicts its own durations, as a user hears it.
Plus duration drift (the variant's own durations against the reference's), a reference-free MOS
estimate (DNSMOS) of both, audio guards, and whether the variant is bit-identical run to run.

Entry points: ``ReferenceScorer(reference_model, cases, voices).score(variant_model)`` computes the
reference side once and scores any number of variants (what a sensitivity sweep wants);
``score_variant(...)`` is the one-call form.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kopt.core.contract import SAMPLE_RATE
from kopt.quality.align import AlignmentUnavailable, instrumented
from kopt.quality.guards import audio_issues
from kopt.quality.registry import MetricError, registry
from kopt.quality.settings import QualityGates
from kopt.quality.synth import Case, ModelRunner, style_for

log = logging.getLogger("kopt.quality")

SAMPLES_PER_FRAME = 600  # Kokoro v1.0: one duration frame is 600 samples at 24 kHz (25 ms)


@dataclass
class _RefCase:
    case: Case
    style: np.ndarray
    audio: np.ndarray
    durations: np.ndarray | None
    free: dict[str, float]


class ReferenceScorer:
    def __init__(self, reference_model: str | Path, cases: Sequence[Case], voices: dict[str, np.ndarray], *,
                 metrics: Sequence[str] | None = None, aligned: bool = True, threads: int = 1,
                 cache_dir: str | Path | None = None, determinism_runs: int = 2) -> None:
        reg = registry()
        metrics = list(reg) if metrics is None else metrics  # default: every registered metric
        unknown = [m for m in metrics if m not in reg]
        if unknown:
            from kopt.core.errors import KoptError

            raise KoptError(f"unknown quality metric {unknown[0]!r}; choose from: {', '.join(reg)}")
        self.metrics = [reg[m] for m in metrics]
        self.cases = list(cases)
        self.voices = voices
        self.threads = threads
        self.cache_dir = cache_dir
        self.determinism_runs = determinism_runs
        self.reference_model = Path(reference_model)
        self.align_reason: str | None = None
        ref_path = self.reference_model
        if aligned:
            try:
                ref_path = instrumented(self.reference_model, accept_input=False, cache_dir=cache_dir)
            except AlignmentUnavailable as e:
                self.align_reason = str(e)
                log.warning("aligned scoring unavailable: %s", e)
        else:
            self.align_reason = "aligned scoring not requested"
        runner = ModelRunner(ref_path, threads=threads)
        if self.align_reason is None and not runner.has_durations_out:
            self.align_reason = f"{ref_path}: reference graph has no 'durations' output"
        self.refs: list[_RefCase] = []
        for c in self.cases:
            style = style_for(voices, c)
            audio, dur = runner(c, style)
            self.refs.append(_RefCase(c, style, audio, dur, self._free(audio)))
        del runner

    @property
    def aligned(self) -> bool:
        return self.align_reason is None

    def _free(self, audio: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in self.metrics:
            if m.kind == "reference_free":
                try:
                    out.update(m.fn(audio, SAMPLE_RATE))
                except MetricError as e:
                    out[f"{m.name}_error"] = str(e)
        return out

    def _intrusive(self, ref: np.ndarray, deg: np.ndarray, aligned: bool, suffix: str,
                   errors: dict[str, str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.metrics:
            if m.kind != "intrusive":
                continue
            try:
                for k, v in m.fn(ref, deg, SAMPLE_RATE, aligned=aligned).items():
                    out[f"{k}_{suffix}"] = v
            except MetricError as e:
                errors[f"{m.name}_{suffix}"] = str(e)
        return out

    def score(self, variant_model: str | Path) -> dict[str, Any]:
        """Per-case and mean metrics of a variant; see the module docstring for what each means.
        ``by_language`` holds the same figures (metrics, cases, guard_issues, errors) per language of
        the cases; the top-level ones pool every case."""
        vpath = Path(variant_model)
        errors: dict[str, str] = {}
        nat_path, align_reason = vpath, self.align_reason
        al_runner = None
        if align_reason is None:
            try:
                nat_path = instrumented(vpath, accept_input=False, cache_dir=self.cache_dir)
                al_runner = ModelRunner(instrumented(vpath, accept_input=True, cache_dir=self.cache_dir),
                                        threads=self.threads)
            except AlignmentUnavailable as e:
                align_reason, nat_path = str(e), vpath
        nat_runner = ModelRunner(nat_path, threads=self.threads)
        cases_out: list[dict[str, Any]] = []
        issues: list[str] = []
        by_lang: dict[str, dict[str, Any]] = {}
        for rc in self.refs:
            c = rc.case
            cerr: dict[str, str] = {}
            n_issues = len(issues)
            audio, dur = nat_runner(c, rc.style)
            row: dict[str, Any] = {"id": c.id, "voice": c.voice, "language": c.language, "tokens": len(c.tokens),
                                   "samples_ref": int(rc.audio.size), "samples_natural": int(audio.size),
                                   "audio_length_ratio": audio.size / max(rc.audio.size, 1)}
            issues += audio_issues(audio, len(c.tokens), f"{vpath.name}:{c.id}", rc.audio)
            row.update(self._intrusive(rc.audio, audio, False, "natural", cerr))
            free = self._free(audio)
            for k, v in free.items():
                row[k] = v
                if k in rc.free and isinstance(v, float):
                    row[f"{k}_ref"] = rc.free[k]
                    row[f"{k}_delta"] = v - rc.free[k]
            row.update(drift(rc.durations, dur, rc.audio.size, audio.size))
            if al_runner is not None and rc.durations is not None:
                aud_al, _ = al_runner(c, rc.style, durations=rc.durations)
                row["samples_aligned"] = int(aud_al.size)
                issues += audio_issues(aud_al, len(c.tokens), f"{vpath.name}:{c.id} (aligned)", rc.audio)
                row.update(self._intrusive(rc.audio, aud_al, True, "aligned", cerr))
            lang = by_lang.setdefault(c.language, {"cases": [], "guard_issues": [], "errors": {}})
            if cerr:
                row["errors"] = cerr
                errors.update({f"{c.id}:{k}": v for k, v in cerr.items()})
                lang["errors"].update({f"{c.id}:{k}": v for k, v in cerr.items()})
            lang["guard_issues"] += issues[n_issues:]
            lang["cases"].append(row)
            cases_out.append(row)
        for lang in by_lang.values():
            lang["metrics"] = _means(lang["cases"])
        det = determinism(nat_runner, self.refs[0], self.determinism_runs) if self.refs and self.determinism_runs else None
        return {"metrics": _means(cases_out), "cases": cases_out, "aligned": align_reason is None,
                "align_reason": align_reason, "guard_issues": issues, "errors": errors, "determinism": det,
                "by_language": by_lang,
                "variant_model": str(vpath), "reference_model": str(self.reference_model)}


def drift(ref_dur: np.ndarray | None, var_dur: np.ndarray | None, ref_samples: int, var_samples: int) -> dict[str, Any]:
    """Duration drift: total frames and per-token differences; from audio length when the graphs
    expose no durations."""
    if ref_dur is None or var_dur is None:
        return {"duration_frames_diff": (var_samples - ref_samples) / SAMPLES_PER_FRAME}
    if ref_dur.shape != var_dur.shape:
        return {"duration_frames_diff": float(var_dur.sum() - ref_dur.sum())}
    d = var_dur.astype(np.int64) - ref_dur.astype(np.int64)
    return {"duration_frames_diff": float(d.sum()), "duration_frames_abs": float(np.abs(d).sum()),
            "duration_tokens_changed": float(np.mean(d != 0)), "duration_token_abs_diff_max": float(np.abs(d).max())}


def determinism(runner: ModelRunner, rc: _RefCase, runs: int) -> dict[str, Any]:
    """Run the first case ``runs`` times on CPU and compare the outputs bit for bit."""
    outs = [runner(rc.case, rc.style)[0] for _ in range(max(runs, 2))]
    same = all(o.shape == outs[0].shape and o.tobytes() == outs[0].tobytes() for o in outs[1:])
    diff = max((float(np.max(np.abs(o - outs[0]))) for o in outs[1:] if o.shape == outs[0].shape), default=None)
    return {"bit_identical": same, "runs": len(outs), "max_abs_diff": diff, "case": rc.case.id}


def _means(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("tokens",):
                keys.setdefault(k)
    out = {}
    for k in keys:
        vals = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float)) and np.isfinite(r[k])]
        if vals:
            out[k] = float(np.mean(vals))
    for k in ("pesq_wb_aligned", "pesq_wb_natural"):
        vals = [r[k] for r in rows if k in r]
        if vals:
            out[f"{k}_min"] = float(min(vals))
    for k in ("duration_token_abs_diff_max",):
        vals = [r[k] for r in rows if k in r]
        if vals:
            out[k] = float(max(vals))
    return out


def check_gates(result: dict[str, Any], gates: QualityGates) -> dict[str, Any]:
    """{"pass": bool, "checks": [{"gate", "value", "limit", "pass"}]}; a gate whose metric is missing fails."""
    m = result["metrics"]
    checks = []
    table = (("pesq_wb_aligned_min", "pesq_wb_aligned", ">="), ("pesq_wb_natural_min", "pesq_wb_natural", ">="),
             ("stoi_aligned_min", "stoi_aligned", ">="), ("mcd_db_aligned_max", "mcd_db_aligned", "<="),
             ("dnsmos_ovrl_delta_min", "dnsmos_ovrl_delta", ">="),
             ("duration_frames_changed_max", "duration_tokens_changed", "<="))
    for gate, metric_name, op in table:
        limit = getattr(gates, gate)
        if limit is None:
            continue
        v = m.get(metric_name)
        ok = v is not None and (v >= limit if op == ">=" else v <= limit)
        checks.append({"gate": gate, "metric": metric_name, "value": v, "limit": limit, "pass": bool(ok)})
    if gates.guards:
        checks.append({"gate": "guards", "metric": "guard_issues", "value": len(result["guard_issues"]), "limit": 0,
                       "pass": not result["guard_issues"]})
    return {"pass": all(c["pass"] for c in checks), "checks": checks}


def score_variant(variant_model: str | Path, reference_model: str | Path, cases: Sequence[Case],
                  voices: dict[str, np.ndarray], aligned: bool = True, *, metrics: Sequence[str] | None = None,
                  threads: int = 1, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Score one variant against the reference on ``cases``; returns ``ReferenceScorer.score``'s dict:
    ``metrics`` (means over cases: ``pesq_wb_aligned``, ``pesq_wb_natural``, ``stoi_*``, ``mcd_db_*``,
    ``log_mel_db_*``, ``mrstft_*``, ``dnsmos_*``, ``duration_*``), ``cases`` (per case), ``aligned`` and
    ``align_reason``, ``guard_issues``, ``errors``, ``determinism``."""
    return ReferenceScorer(reference_model, cases, voices, metrics=metrics, aligned=aligned, threads=threads,
                           cache_dir=cache_dir).score(variant_model)


def cases_from_textset(voices: Sequence[str], categories: Sequence[str] | None = None,
                       texts: Sequence[str] | None = None, speed: float = 1.0,
                       text_set: str | None = None) -> list[Case]:
    """Cases for every selected text-set item and voice (the text set's own language)."""
    from kopt.quality.texts import texts_for

    lt = texts_for(None, categories, texts, text_set)
    return [Case(f"{it.id}/{v}", it.tokens, v, speed, lt.language) for it in lt.items for v in voices]
