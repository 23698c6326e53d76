"""`python -m kokoro_runtime wyoming` on tiny bundles, driven by the wyoming package's own client:
servers on 127.0.0.1, port 0, in subprocesses that stop when the block ends (and after two idle minutes)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("wyoming", reason="the wyoming package (kopt's test extra) is not installed")

from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.error import Error  # noqa: E402
from wyoming.event import Event  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.tts import (  # noqa: E402
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from kokoro_runtime import load, to_pcm16  # noqa: E402
from kopt.publish.loadtest import running_wyoming  # noqa: E402
from tests.runtime.helpers import REPO  # noqa: E402
from tests.runtime.serving import TEXT, make_bundle  # noqa: E402

FIRST, SECOND = "The cat sat on the mat.", "The dog ran to the park, and it was sunny."
LONG = " ".join(["The cat sat on the mat and the dog ran to the park."] * 24)   # a few seconds on the busy graph
READ_S = 30           # no read waits longer than this


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("wyoming"), modes=True)


@pytest.fixture(scope="module")
def server(bundle):
    with running_wyoming(bundle, "--threads", "1", cwd=REPO, timeout=60) as (port, _):
        yield port


@pytest.fixture(scope="module")
def busy_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("wyoming-busy"), busy=True)


def pcm(bundle, text: str, voice: str = "voice_0", mode: str | None = None) -> np.ndarray:
    """What the library renders: the samples the server must send."""
    return np.frombuffer(to_pcm16(load(bundle, g2p=False, threads=1, mode=mode).synthesize(text, voice)), "<i2")


def same(got: np.ndarray, want: np.ndarray) -> bool:
    return got.shape == want.shape and int(np.abs(got.astype(int) - want.astype(int)).max(initial=0)) <= 1


async def until(client: AsyncTcpClient, *types: str) -> list[Event]:
    """Events up to and including the first of ``types`` (or an error)."""
    events = []
    while True:
        ev = await asyncio.wait_for(client.read_event(), READ_S)
        assert ev is not None, f"the server closed the connection after {[e.type for e in events]}"
        events.append(ev)
        if ev.type in types or Error.is_type(ev.type):
            return events


def audio_of(events: list[Event]) -> np.ndarray:
    return np.frombuffer(b"".join(e.payload or b"" for e in events if AudioChunk.is_type(e.type)), "<i2")


def kinds(events: list[Event]) -> list[str]:
    """Event types with runs of audio-chunk collapsed."""
    out: list[str] = []
    for e in events:
        if not (e.type == "audio-chunk" and out and out[-1] == "audio-chunk"):
            out.append(e.type)
    return out


async def synthesize(port: int, text: str, voice: str | None = "voice_0", **voice_kw) -> list[Event]:
    async with AsyncTcpClient("127.0.0.1", port) as c:
        v = SynthesizeVoice(name=voice, **voice_kw) if voice or voice_kw else None
        await c.write_event(Synthesize(text, voice=v).event())
        return await until(c, "audio-stop")


def test_info_lists_the_voices_languages_and_modes(server):
    async def go():
        async with AsyncTcpClient("127.0.0.1", server) as c:
            await c.write_event(Describe().event())
            return Info.from_event((await until(c, "info"))[-1])

    info = asyncio.run(go())
    (program,) = info.tts
    assert program.name == "kokoro" and program.installed and program.supports_synthesize_streaming
    assert [v.name for v in program.voices] == ["voice_0", "voice_1", "voice_0@quality", "voice_1@quality"]
    assert all(v.languages == ["en-US"] and v.installed for v in program.voices)   # no Kokoro prefix: English
    assert "fast" in program.description and "quality" in program.description


def test_synthesize_sends_what_the_library_renders(server, bundle):
    events = asyncio.run(synthesize(server, TEXT))
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (24000, 2, 1)
    assert kinds(events) == ["audio-start", "audio-chunk", "audio-stop"]
    assert all(len(e.payload) <= 2 * 1024 for e in events if AudioChunk.is_type(e.type))
    assert same(audio_of(events), pcm(bundle, TEXT))
    # the other mode through `voice@mode`, and the default voice when none is named
    assert same(audio_of(asyncio.run(synthesize(server, TEXT, "voice_1@quality"))),
                pcm(bundle, TEXT, "voice_1", mode="quality"))
    assert same(audio_of(asyncio.run(synthesize(server, TEXT, None))), pcm(bundle, TEXT))
    assert same(audio_of(asyncio.run(synthesize(server, TEXT, None, language="en_US"))), pcm(bundle, TEXT))


def test_streaming_synthesis_speaks_each_sentence_as_it_completes(server, bundle):
    async def go():
        async with AsyncTcpClient("127.0.0.1", server) as c:
            await c.write_event(SynthesizeStart(voice=SynthesizeVoice("voice_1")).event())
            words = f"{FIRST} {SECOND}".split(" ")
            for w in words[:7]:                           # the first sentence and the start of the second
                await c.write_event(SynthesizeChunk(w + " ").event())
            first = await until(c, "audio-stop")          # spoken before the rest of the text arrives
            for w in words[7:]:
                await c.write_event(SynthesizeChunk(w + " ").event())
            await c.write_event(Synthesize(f"{FIRST} {SECOND}").event())   # the copy for older servers: ignored
            await c.write_event(SynthesizeStop().event())
            return first, await until(c, "synthesize-stopped")

    first, rest = asyncio.run(go())
    assert kinds(first) == ["audio-start", "audio-chunk", "audio-stop"]
    assert kinds(rest) == ["audio-start", "audio-chunk", "audio-stop", "synthesize-stopped"]
    assert same(audio_of(first), pcm(bundle, FIRST, "voice_1"))
    assert same(audio_of(rest), pcm(bundle, SECOND, "voice_1"))


def test_bad_input_is_an_error_event_and_the_connection_keeps_serving(server, bundle):
    async def go():
        got = []
        async with AsyncTcpClient("127.0.0.1", server) as c:
            for event in (Synthesize(TEXT, voice=SynthesizeVoice("nobody")).event(),
                          Synthesize("   ", voice=SynthesizeVoice("voice_0")).event(),
                          Synthesize(TEXT, voice=SynthesizeVoice("voice_0@nope")).event(),
                          Synthesize(TEXT, voice=SynthesizeVoice(language="fr")).event(),
                          SynthesizeChunk("no stream was started. ").event()):
                await c.write_event(event)
                got.append((await until(c, "audio-stop"))[-1])
            # a stream whose voice is unknown: one error, then synthesize-stopped, nothing spoken
            await c.write_event(SynthesizeStart(voice=SynthesizeVoice("nobody")).event())
            await c.write_event(SynthesizeChunk(f"{FIRST} {SECOND} ").event())
            await c.write_event(SynthesizeStop().event())
            stream = await until(c, "synthesize-stopped")
            if Error.is_type(stream[-1].type):
                stream += await until(c, "synthesize-stopped")
            await c.write_event(Synthesize(TEXT, voice=SynthesizeVoice("voice_0")).event())
            return got, stream, await until(c, "audio-stop")

    errors, stream, good = asyncio.run(go())
    assert all(Error.is_type(e.type) for e in errors), [e.type for e in errors]
    codes = [Error.from_event(e).code for e in errors]
    assert codes == ["voice_not_found", "invalid_input", "invalid_input", "invalid_input", "invalid_input"]
    assert "nobody" in Error.from_event(errors[0]).text and "empty" in Error.from_event(errors[1]).text
    assert "nope" in Error.from_event(errors[2]).text and "fr" in Error.from_event(errors[3]).text
    assert [e.type for e in stream] == ["error", "synthesize-stopped"]
    assert same(audio_of(good), pcm(bundle, TEXT))


def test_a_full_queue_is_an_error_event_not_a_wait(busy_bundle):
    async def go(port):
        async with AsyncTcpClient("127.0.0.1", port) as a:
            await a.write_event(Synthesize(LONG, voice=SynthesizeVoice("voice_0")).event())
            await until(a, "audio-start")                  # admitted, speaking
            t = time.monotonic()
            refused = await synthesize(port, TEXT)
            waited = time.monotonic() - t
            rest = await until(a, "audio-stop")
        return refused, waited, rest, await synthesize(port, TEXT)

    with running_wyoming(busy_bundle, "--threads", "1", "--instances", "1", "--queue", "0", "--cache-mb", "0",
                         cwd=REPO, timeout=60) as (port, _):
        refused, waited, rest, later = asyncio.run(go(port))
    err = Error.from_event(refused[-1])
    assert err.code == "busy" and "retry" in err.text and len(refused) == 1
    assert waited < 2.0, f"refused after {waited:.1f} s: it waited instead"
    assert AudioStop.is_type(rest[-1].type)                 # the first client's audio was not disturbed
    assert same(audio_of(later), pcm(busy_bundle, TEXT))    # and the slot is free again


def test_a_client_that_leaves_mid_synthesis_frees_its_instance(busy_bundle):
    async def go(port):
        async with AsyncTcpClient("127.0.0.1", port) as a:
            await a.write_event(Synthesize(LONG, voice=SynthesizeVoice("voice_0")).event())
            await until(a, "audio-start")
        await asyncio.sleep(0.3)                          # the server reads the EOF and cancels the render
        t = time.monotonic()
        events = await synthesize(port, TEXT)
        return events, time.monotonic() - t

    with running_wyoming(busy_bundle, "--threads", "1", "--instances", "1", "--queue", "0", "--cache-mb", "0",
                         cwd=REPO, timeout=60) as (port, proc):
        events, took = asyncio.run(go(port))
        assert proc.poll() is None
    assert AudioStop.is_type(events[-1].type), Error.from_event(events[-1]).text   # admitted: not busy
    assert same(audio_of(events), pcm(busy_bundle, TEXT))
    assert took < 2.0, f"the next client waited {took:.1f} s: the abandoned render kept running"


def test_bad_command_lines_fail_in_one_line(bundle):
    import subprocess
    import sys

    for args, needle in ((["--uri", "http://127.0.0.1:10200"], "--uri"), (["--uri", "tcp://127.0.0.1"], "port"),
                         (["--mode", "nope"], "--mode"), (["--voice", "nobody"], "nobody")):
        r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "wyoming", str(bundle), *args], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bundle_bench_measures_the_bundles_own_wyoming_server(bundle):
    from kopt.publish.loadtest import measure_wyoming
    from kopt.publish.measure import bundle_metrics

    res = measure_wyoming(bundle, TEXT, "voice_0", 2, 1, load_texts=[FIRST, SECOND], clients=(1, 2),
                          requests_per_client=2)
    assert res["wyoming_first_audio_ms"] > 0 and len(res["wyoming_first_audio_ms_runs"]) == 2
    assert res["wyoming_latency_ms"] >= res["wyoming_first_audio_ms"] and res["wyoming_stream_first_audio_ms"] > 0
    assert res["wyoming_audio_s"] == pytest.approx(len(pcm(bundle, TEXT)) / 24000, abs=1e-3)
    assert [(r["clients"], r["requests"], r["ok"], r["errors"]) for r in res["wyoming_load"]] == [(1, 2, 2, 0),
                                                                                              (2, 4, 4, 0)]
    m = bundle_metrics(res)
    assert m["wyoming_first_audio_ms"] == res["wyoming_first_audio_ms"] and m["wyoming_throughput_x_c2"] > 0
    from kopt.cli.cmd_publish import summary_lines

    lines = summary_lines({"cold_start_s": 1.0, "cold_start_s_runs": [1.0], "warm_ttfa_ms": 10.0, "text_words": 14,
                           "first_chunk_audio_s": 1.0, **res})
    assert sum(line.startswith("wyoming") for line in lines) == 3     # first audio, and one line per load run


def test_streamed_text_is_cut_into_sentences_and_long_runs_at_a_space():
    from kokoro_runtime.server.wyoming import split_sentences

    assert split_sentences("One. Two! Thr") == ("One. Two! ", "Thr")
    assert split_sentences('He said "hi." Then') == ('He said "hi." ', "Then")
    assert split_sentences("3.5 percent") == ("", "3.5 percent")          # a decimal point is no sentence end
    assert split_sentences("no end yet") == ("", "no end yet")
    assert split_sentences("電車は遅れました。それで") == ("電車は遅れました。", "それで")   # no space after 。
    assert split_sentences("「はい。」と言った") == ("「はい。」", "と言った")
    ready, rest = split_sentences("word " * 100 + "wor", longest=40)
    assert ready == "word " * 100 and rest == "wor"


def test_stdio_answers_every_event_it_read(bundle):
    """``--uri stdio://``: events on stdin, answers on stdout, exit 0 at the end of the input."""
    import io
    import subprocess
    import sys

    from wyoming.event import read_event, write_event

    sent = io.BytesIO()
    write_event(Describe().event(), sent)
    write_event(Synthesize(TEXT, voice=SynthesizeVoice("voice_0")).event(), sent)
    r = subprocess.run([sys.executable, "-m", "kokoro_runtime", "wyoming", str(bundle), "--uri", "stdio://",
                        "--threads", "1"], input=sent.getvalue(), capture_output=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out, events = io.BytesIO(r.stdout), []
    while (ev := read_event(out)) is not None:
        events.append(ev)
    assert kinds(events) == ["info", "audio-start", "audio-chunk", "audio-stop"]
    assert same(audio_of(events), pcm(bundle, TEXT))
