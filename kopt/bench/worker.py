"""The benchmark worker: one process per (variant, provider) cell, driven over a pipe.

Run as ``python -m kopt.bench.worker --memory-mb N``. It caps its own address space
(``RLIMIT_AS``) before importing anything heavy, then answers one JSON request per line on stdin
with one JSON reply per line on the protocol channel (the original stdout; anything else that
writes to stdout lands on stderr, so a stray print cannot corrupt the protocol). Timing goes
through the runtime's own code path (``kokoro_runtime.Synthesizer``): ``run_tokens`` for
RTF, ``stream`` for time-to-first-audio. A model with a fixed token length (a bind-shapes bucket)
gets its tokens padded with the pad token 0 up to that length on the way in (``Bucketed``), and its
durations cut back to the real tokens on the way out, so the runtime's path serves it unchanged.

``python -m kopt.bench.worker --probe`` prints one JSON line (onnxruntime version, device, providers,
python) and exits: how the parent asks another interpreter's build what it offers (kopt.bench.envs).

Requests (``{"cmd": ...}``) and replies (``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``):
  load       model, voices, vocab, providers [(ep, options)], ep, threads -> load_s, providers, rss_mb
  run        texts [[id, ids]], voice, speed -> runs [{id, seconds, samples}]
  ttfa       text, voice, speed, lang -> seconds, samples (first chunk only; lang: the text's, None = the voice's)
  partition  strict -> nodes per provider (ORT profiler), strict_error when no-CPU-fallback fails
  stats      -> rss_peak_mb (VmHWM of this process; ru_maxrss only without /proc), vm_hwm_mb, ru_maxrss_mb
  quit
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from typing import Any, BinaryIO

from kokoro_runtime.errors import first_line


def _limit_memory(mb: int) -> None:
    if mb > 0:
        limit = mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _rss_now_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _ru_maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / (1024 * 1024)


class Bucketed:
    """A session whose token input has a fixed length ``token_len``: ``run`` pads the tokens feed with 0 up
    to it (bind-shapes masks the pads; they get no frames), and trims a per-token durations output
    back to the real length. Everything else is the session's own."""

    def __init__(self, session: Any, tokens: str, token_len: int, durations_out: str | None) -> None:
        self._session, self._tokens, self.token_len, self._durations = session, tokens, token_len, durations_out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, output_names, feeds, run_options=None):
        import numpy as np

        tok = np.asarray(feeds[self._tokens])
        n = tok.shape[-1]
        if n > self.token_len:
            raise ValueError(f"{n} tokens do not fit the model's fixed length {self.token_len}")
        out = self._session.run(output_names, {**feeds, self._tokens: np.pad(tok, ((0, 0), (0, self.token_len - n)))},
                                run_options)
        names = list(output_names or [o.name for o in self._session.get_outputs()])
        if self._durations in names:
            i = names.index(self._durations)
            out[i] = np.asarray(out[i]).reshape(-1)[:n]
        return out


def _check_finite(audio: Any, text_id: str) -> None:
    """A provider whose audio is NaN or infinite has no speed to report (OpenVINO in bf16 on
    Kokoro's harmonic source, for one): the cell fails instead of timing broken output."""
    import numpy as np

    bad = int(audio.size - np.count_nonzero(np.isfinite(audio)))
    if bad:
        raise ValueError(f"{bad} of {audio.size} audio samples are NaN or infinite for text {text_id!r} on this "
                         "provider: broken output, not timed (run it in f32, or keep the parts that break in f32: "
                         "docs/gpu.md)")


def fixed_token_len(session: Any, tokens: str) -> int | None:
    shape = next(i.shape for i in session.get_inputs() if i.name == tokens)
    return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None


def probe() -> dict[str, Any]:
    import onnxruntime as ort

    return {"onnxruntime": ort.__version__, "device": ort.get_device(), "providers": ort.get_available_providers(),
            "python": sys.executable}


class Worker:
    def __init__(self) -> None:
        self.synth: Any = None
        self.req: dict[str, Any] = {}

    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from kokoro_runtime import Synthesizer

        providers = [tuple(p) if isinstance(p, list) else p for p in req["providers"]]
        voices = dict(np.load(req["voices"], allow_pickle=False))
        t0 = time.perf_counter()
        self.synth = Synthesizer(req["model"], voices, vocab=req.get("vocab"), providers=providers,
                                 threads=int(req.get("threads", 0)))
        load_s = time.perf_counter() - t0
        self.req = req
        sig = self.synth.signature
        token_len = fixed_token_len(self.synth.session, sig.tokens)
        if token_len is not None:
            self.synth.session = Bucketed(self.synth.session, sig.tokens, token_len, sig.durations_out)
        got = list(self.synth.session.get_providers())
        reply: dict[str, Any] = {"load_s": load_s, "providers": got, "rss_mb": _rss_now_mb(), "token_len": token_len}
        if not got or got[0] != req["ep"]:
            return {"ok": False, "error": f"session runs on {got} instead of {req['ep']} "
                    "(onnxruntime fell back silently)", **reply}
        return reply

    def run(self, req: dict[str, Any]) -> dict[str, Any]:
        runs = []
        for tid, ids in req["texts"]:
            t0 = time.perf_counter()
            audio = self.synth.run_tokens(ids, req["voice"], float(req.get("speed", 1.0)))
            dt = time.perf_counter() - t0
            _check_finite(audio, tid)
            runs.append({"id": tid, "seconds": dt, "samples": int(audio.size)})
        return {"runs": runs}

    def ttfa(self, req: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        gen = self.synth.stream(req["text"], req["voice"], float(req.get("speed", 1.0)), lang=req.get("lang"))
        try:
            first = next(gen)
        finally:
            gen.close()
        return {"seconds": time.perf_counter() - t0, "samples": int(first.size)}

    def partition(self, req: dict[str, Any]) -> dict[str, Any]:
        from kokoro_runtime.feed import pad
        from kopt.core.kokoro import KokoroIO, open_session, options, style_of
        from kopt.core.providers import partition_from_profile

        base = self.req
        providers = [tuple(p) if isinstance(p, list) else p for p in base["providers"]]
        out: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="kopt-prof-") as d:
            so = options(int(base.get("threads", 0)), True, profile_prefix=os.path.join(d, "p"))
            sess = open_session(base["model"], providers=providers, opts=so, fallback=True)
            ids = req["ids"]
            style = style_of(self.synth.voice_array(base["voice"]), len(ids))
            sess.run(None, KokoroIO.of(sess, base["model"]).feeds(pad(ids), style, 1.0))
            out.update(partition_from_profile(sess.end_profiling()))
            del sess
            if req.get("strict") and base["ep"] != "CPUExecutionProvider":
                try:
                    strict = options(1, True, config={"session.disable_cpu_ep_fallback": "1"})
                    open_session(base["model"], providers=providers, opts=strict, fallback=True)
                    out["strict_ok"] = True
                except Exception as e:  # ORT's own exception types
                    out["strict_ok"] = False
                    out["strict_error"] = first_line(e)
        return out

    def stats(self, req: dict[str, Any]) -> dict[str, Any]:
        # Peak RSS of this cell: VmHWM belongs to the address space created at exec. ru_maxrss is not
        # usable on Linux: it survives execve, so it carries the (possibly large) parent's high-water
        # mark from before the fork; it is only the fallback where /proc is missing (macOS).
        hwm = _vm_hwm_mb()
        return {"rss_peak_mb": hwm if hwm is not None else _ru_maxrss_mb(), "vm_hwm_mb": hwm,
                "ru_maxrss_mb": _ru_maxrss_mb(), "rss_mb": _rss_now_mb()}


def serve(inp: BinaryIO, out: BinaryIO) -> int:
    w = Worker()
    handlers = {"load": w.load, "run": w.run, "ttfa": w.ttfa, "partition": w.partition, "stats": w.stats}
    for line in inp:
        if not line.strip():
            continue
        req = json.loads(line)
        cmd = req.get("cmd")
        if cmd == "quit":
            out.write(b'{"ok": true}\n')
            out.flush()
            return 0
        try:
            if cmd not in handlers:
                raise ValueError(f"unknown command {cmd!r}")
            rep = handlers[cmd](req)
            rep.setdefault("ok", True)
        except MemoryError:
            rep = {"ok": False, "error": "out of memory (MemoryError under the worker's memory limit)"}
        except Exception as e:  # reported to the parent, which records the cell as failed
            rep = {"ok": False, "error": f"{type(e).__name__}: {first_line(e, 400)}", "trace": traceback.format_exc()[-2000:]}
        out.write((json.dumps(rep) + "\n").encode())
        out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kopt.bench.worker")
    ap.add_argument("--memory-mb", type=int, default=0)
    ap.add_argument("--probe", action="store_true", help="Print this interpreter's onnxruntime build as JSON and exit.")
    args = ap.parse_args(argv)
    if args.probe:
        sys.stdout.write(json.dumps(probe()) + "\n")
        return 0
    _limit_memory(args.memory_mb)
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (ours or a library's) go to stderr, never into the protocol
    sys.stdout = sys.stderr
    return serve(sys.stdin.buffer, proto)


if __name__ == "__main__":
    sys.exit(main())
