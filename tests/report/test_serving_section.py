"""The report's bundle section: targets met or not, the load table, from a kind=bundle record."""

from kopt.core.results import make_record
from kopt.publish.measure import bundle_metrics
from kopt.report.page import write_report
from tests.select.factory import standard


def _bundle_record(run_id: str) -> dict:
    res = {"cold_start_s": 1.4, "cold_start_first_s": 2.0, "warm_ttfa_ms": 420.0, "http_ttfa_ms": 140.0,
           "http_latency_ms": 900.0, "say_warm_ms": 350.0, "say_cached_ms": 60.0, "say_cold_ms": 2100.0,
           "server_rss_mb": 900.0, "throughput_8_vs_best_1": 1.1,
           "cold_breakdown_s": {"python": 0.03, "imports": 0.2, "session": 0.2, "first_chunk": 0.6},
           "load": [{"instances": 1, "threads": 2, "clients": c, "requests": 2 * c, "ok": 2 * c, "busy_503": 0,
                     "errors": 0, "throughput_x": 2.0 + c / 10, "ttfa_ms_p50": 100.0 * c, "ttfa_ms_p95": 120.0 * c,
                     "latency_ms_p50": 900.0, "latency_ms_p95": 1000.0} for c in (1, 8)]}
    return make_record("bundle", run_id=run_id, variant={"name": "hybrid", "key": "ab" * 10}, threads=2,
                       provider={"name": "CPUExecutionProvider", "config": "cpu"}, metrics=bundle_metrics(res),
                       extra={"bundle_bench": res})


def test_bundle_section_in_page_and_markdown(tmp_path):
    recs = standard() + [_bundle_record("r1")]
    rep = write_report([("r1", recs)], tmp_path / "rep")
    page = rep.html.read_text(encoding="utf-8")
    assert "The published bundle, as its users run it" in page
    assert "warm TTFA over HTTP" in page and "The HTTP server under concurrent clients" in page
    md = (tmp_path / "rep" / "results.md").read_text(encoding="utf-8")
    rows = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "| yes " in rows["warm TTFA over HTTP (request sent -> first audio byte), ms"]       # 140 <= 150
    assert "| no " in rows["say with a warm daemon, process start -> first audio, ms"]          # 350 > 300
    assert "| no " in rows["one-shot command, process start -> first audio, s"]
    assert "imports 0.20, session 0.20, first_chunk 0.60" in md   # a record from before front_end
    load = md.split("under concurrent clients")[1]
    assert len([ln for ln in load.splitlines() if ln.startswith("|")]) == 4 and "2.8" in load   # head, rule, 2 rows


def test_no_bundle_record_no_section(tmp_path):
    rep = write_report([("r1", standard())], tmp_path / "rep")
    assert "The published bundle" not in rep.html.read_text(encoding="utf-8")


def test_breakdown_with_the_session_beside_the_front_end():
    from kopt.publish.coldstart import breakdown_text

    bd = {"python": 0.03, "imports": 0.2, "verify": 0.0, "voices": 0.01, "token_cache": 0.02, "front_end": 0.21,
          "session_wait": 0.12, "first_chunk": 0.6, "session": 0.35, "total": 1.19}
    assert breakdown_text(bd) == ("python 0.03, imports 0.20, verify 0.00, voices 0.01, token_cache 0.02, "
                                  "front_end 0.21, session_wait 0.12, first_chunk 0.60 "
                                  "(the session took 0.35 beside them)")
