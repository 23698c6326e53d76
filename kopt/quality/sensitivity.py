"""Sensitivity analysis: which node groups can be int8 (static QDQ) without hurting the audio.

1. Calibrate once over every Conv/ConvTranspose/MatMul tensor (one calibration cache for all runs).
2. Quantize one group at a time (``include=[group]``, everything else float) and score it against the
   fp32 reference on the check set of every language (``languages``: English and Japanese, each spoken
   by a voice of its language) with duration-aligned PESQ-wb (kopt.quality.score; natural audio, said
   so in the result, when alignment is unavailable). A score is the worst language's mean, and the
   case floor holds for every sentence of every language; each language's figures are kept beside.
3. Rank groups by the score they leave; then find the longest prefix of the ranking (least harmful
   first) whose combined quantization still meets the quality budget with a margin to spare (mean >=
   budget + margin, and no check sentence below the case floor), by bisection over the prefix length,
   each probe a real quantize-and-score. Everything outside that prefix is the exclusion list. The
   margin is there because a set that grazes the budget on the check set falls below it on the next
   sentence or the next run.

Writes ``sensitivity.json`` (ranking, probes, exclusion list, how it was made) and ``sensitivity.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import onnx

from kopt.core.errors import KoptError
from kopt.core.progress import NullProgress
from kopt.quality.sensitivity_settings import DEFAULT_GROUPS, SensitivityConfig
from kopt.quantize import common
from kopt.quantize.groups import select

__all__ = ["DEFAULT_GROUPS", "SensitivityConfig", "run_sensitivity", "write_precision_map"]


@dataclass
class _Ctx:
    reference: Path
    out: Path
    cfg: SensitivityConfig
    voices: dict | None
    scorer: Any
    cache: Path
    progress: Any


def _static_cfg(cfg: SensitivityConfig, cache: Path, include: Sequence[str]):
    from kopt.quantize.int8_static import Int8StaticConfig

    return Int8StaticConfig(include=tuple(include), exclude=(), op_types=cfg.op_types,
                            calibrate_method=cfg.calibrate_method,  # type: ignore[arg-type]
                            calib_sentences=cfg.calib_sentences, calib_seed=cfg.calib_seed,
                            calibration_cache=str(cache), balance=cfg.balance, check=False)


def _quantize(c: _Ctx, model: onnx.ModelProto, include: Sequence[str], tag: str) -> Path:
    from kopt.quantize.int8_static import quantize_static_file, selected_nodes

    scfg = _static_cfg(c.cfg, c.cache, include)
    inc, exc = selected_nodes(model, scfg)
    out = c.out / "work" / f"{tag}.onnx"
    quantize_static_file(c.reference, out, scfg, c.voices, inc, exc)
    return out


def _score(c: _Ctx, path: Path) -> dict[str, Any]:
    r = c.scorer.score(path)
    return summarize(r)


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    """A probe's figures from a scorer result: the worst language's mean (``score``), the lowest
    sentence of any language (``min``), and each language's own (``languages``)."""
    key = "pesq_wb_aligned" if r["aligned"] else "pesq_wb_natural"
    per: dict[str, dict[str, Any]] = {}
    for lang, part in (r.get("by_language") or {"en-us": r}).items():
        m = part["metrics"]
        low = m.get(f"{key}_min")
        per[lang] = {"score": round(float(m.get(key, 0.0)), 4), "min": None if low is None else round(float(low), 4),
                     "pesq_wb_natural": round(float(m.get("pesq_wb_natural", 0.0)), 4)}
    worst = min(per, key=lambda lang: per[lang]["score"])
    lows = [p["min"] for p in per.values()]
    return {"score": per[worst]["score"], "metric": key, "worst_language": worst,
            "min": None if any(x is None for x in lows) else min(lows),  # type: ignore[type-var]
            "pesq_wb_natural": per[worst]["pesq_wb_natural"], "languages": per,
            "issues": r["guard_issues"][:3]}


def meets(cfg: SensitivityConfig, s: dict[str, Any]) -> bool:
    """A probe's scores keep the budget plus the margin, and its worst sentence the case floor."""
    if s["score"] < cfg.budget + cfg.margin:
        return False
    return cfg.case_floor is None or (s.get("min") is not None and s["min"] >= cfg.case_floor)


_SAME = ("cases", "languages", "op_types", "calibrate_method", "calib_sentences", "calib_seed", "balance")


def _reusable(cfg: SensitivityConfig, ref: Path) -> dict[str, dict[str, Any]]:
    """Alone-scores from ``cfg.reuse`` made under the same settings; KoptError if they differ."""
    if not cfg.reuse:
        return {}
    p = Path(cfg.reuse)
    try:
        old = json.loads(p.read_text(encoding="utf-8"))
        old_cfg = old["config"]
    except (OSError, ValueError, KeyError) as e:
        raise KoptError(f"{p}: not a readable sensitivity.json ({e}); pass the file `kopt sensitivity` wrote") from None
    mine = cfg.model_dump(mode="json")
    old_default = {"balance": False, "languages": ["en-us"]}  # what files written before these fields scored
    diff = [k for k in _SAME if old_cfg.get(k, old_default.get(k)) != mine[k]]
    if Path(old.get("reference", "")).resolve() != ref.resolve():
        diff.append("reference")
    if diff:
        raise KoptError(f"{p}: made with other settings ({', '.join(diff)}); its scores cannot be reused here")
    return {r["group"]: {k: v for k, v in r.items() if k != "reused"} for r in old.get("ranking", [])}


def run_sensitivity(reference: str | Path, out_dir: str | Path, cfg: SensitivityConfig | None = None,
                    voices: dict | None = None, progress=None) -> dict[str, Any]:
    """Rank ``cfg.groups`` by the score of the reference with only that group int8, then (``cfg.search``)
    bisect for the longest prefix of the ranking that meets the budget; writes sensitivity.json."""
    cfg = cfg or SensitivityConfig()
    ref = Path(reference)
    out = Path(out_dir)
    (out / "work").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    c, model, vsrc = _context(ref, out, cfg, voices, progress or NullProgress())
    groups = [g for g in cfg.groups if select(model, [g], cfg.op_types)]
    result: dict[str, Any] = {
        "reference": str(ref), "config": cfg.model_dump(mode="json"), "voices": vsrc,
        "aligned": c.scorer.aligned, "align_reason": c.scorer.align_reason,
        "method": f"int8 static QDQ of {'/'.join(cfg.op_types)} (per-channel s8 weights, u8 activations"
                  f"{', channel-balanced' if cfg.balance else ''}), "
                  "one group at a time; "
                  "score = mean PESQ-wb vs fp32 over the check cases of the worst of "
                  f"{'/'.join(cfg.languages)}",
        "skipped_groups": [g for g in cfg.groups if g not in groups], "ranking": _rank(c, model, groups, ref),
        "probes": [],
    }
    order = [r["group"] for r in result["ranking"]]
    best_k = _bisect(c, model, order, result["probes"]) if cfg.search and order else 0
    result["int8_groups"] = order[:best_k]
    result["exclude"] = order[best_k:]
    result["seconds"] = round(time.time() - t0, 1)
    (out / "sensitivity.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def _context(ref: Path, out: Path, cfg: SensitivityConfig, voices: dict | None,
             progress) -> tuple[_Ctx, onnx.ModelProto, Any]:
    """The voices, the reference model, and a scorer of the check set against the fp32 reference."""
    from kopt.quality.score import ReferenceScorer
    from kopt.quality.synth import Case
    from kopt.quantize.checkset import check_set

    voices, vsrc = common.resolve_voices(voices)
    if not voices:
        raise KoptError("sensitivity needs a voice pack (none in the context and no embedded model installed)")
    model = common.load_output(ref)
    utts = [u for lang in cfg.languages for u in check_set(voices, names=list(cfg.cases), language=lang)]
    cases = [Case(u.name, tuple(int(t) for t in u.tokens), u.voice, u.speed, u.language) for u in utts]
    with progress.task("scoring the fp32 reference"):
        scorer = ReferenceScorer(ref, cases, voices, metrics=("pesq",), threads=cfg.threads,
                                 cache_dir=out / "work" / "durations", determinism_runs=0)
    # Quantize a copy of the reference that already takes 'durations' as input (and echoes it as an
    # output): each variant is then scored aligned without re-instrumenting a 300 MB graph per run.
    base = ref
    if scorer.aligned:
        from kopt.quality.align import instrumented

        base = instrumented(ref, accept_input=True, cache_dir=out / "work" / "durations")
    c = _Ctx(base, out, cfg, voices, scorer, out / f"calibration-{cfg.calibrate_method}.json", progress)
    return c, model, vsrc


def _rank(c: _Ctx, model: onnx.ModelProto, groups: list[str], ref: Path) -> list[dict[str, Any]]:
    """Each group's score with only it int8 (or its score from ``cfg.reuse``), best first."""
    cfg, progress = c.cfg, c.progress
    earlier = _reusable(cfg, ref)
    ranking: list[dict[str, Any]] = []
    with progress.task("quantizing one group at a time", total=len(groups)) as task:
        for g in groups:
            if g in earlier:
                ranking.append({**earlier[g], "reused": cfg.reuse})
                progress.info(f"{g}: {earlier[g]['score']:.3f} (reused from {cfg.reuse})")
                task.advance()
                continue
            path = _quantize(c, model, [g], f"only-{g}")
            s = _score(c, path)
            n = len(select(model, [g], cfg.op_types))
            ranking.append({"group": g, "nodes": n, **s})
            langs = "".join(f"{k} {v['score']:.3f}; " for k, v in s.get("languages", {}).items())
            progress.info(f"{g}: {s['metric']} {s['score']:.3f} ({langs}{n} nodes)")
            path.unlink(missing_ok=True)
            task.advance()
    ranking.sort(key=lambda r: (-r["score"], r["nodes"]))
    return ranking


def _bisect(c: _Ctx, model: onnx.ModelProto, order: list[str], probes: list[dict[str, Any]]) -> int:
    """The largest k whose first k groups of ``order`` int8 together meet the budget; each try
    is appended to ``probes``."""
    lo, hi = 0, len(order)  # invariant: prefix lo meets the budget (0 trivially), hi+1 unknown
    with c.progress.task("bisecting the largest group set within budget"):
        while lo < hi:
            mid = (lo + hi + 1) // 2
            path = _quantize(c, model, order[:mid], f"prefix-{mid}")
            s = _score(c, path)
            path.unlink(missing_ok=True)
            ok = meets(c.cfg, s)
            probes.append({"k": mid, "groups": order[:mid], **s, "meets_budget": ok})
            low = "" if s.get("min") is None else f", worst sentence {s['min']:.3f}"
            c.progress.info(f"first {mid} groups: {s['score']:.3f}{low} ({'ok' if ok else 'over budget'})")
            if ok:
                lo = mid
            else:
                hi = mid - 1
    return lo


def write_precision_map(result: dict[str, Any], path: str | Path) -> Path:
    """A hybrid precision map from a sensitivity result: chosen groups int8, the rest fp32."""
    best = next((p for p in sorted(result["probes"], key=lambda p: -p["k"]) if p["meets_budget"]), None)
    data = {
        "precision": {g: "int8" for g in result["int8_groups"]},
        "default": "fp32",
        "made_by": {
            "command": "kopt sensitivity --write-map " + str(path),
            "reference": result["reference"], "budget": result["config"]["budget"],
            "margin": result["config"].get("margin", 0.0), "case_floor": result["config"].get("case_floor"),
            "cases": result["config"]["cases"], "aligned": result["aligned"],
            "calibrate_method": result["config"]["calibrate_method"],
            "score_of_chosen_set": best["score"] if best else None,
            "ranking": [{"group": r["group"], "score": r["score"]} for r in result["ranking"]],
            "excluded": result["exclude"],
        },
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return p
