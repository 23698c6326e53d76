"""The HTTP API (Starlette): OpenAI's ``POST /v1/audio/speech`` and a few read-only routes.

Routes parse and validate a request (``parse_speech``: a plain function, no HTTP), hand it to the
``Engine`` and stream what it renders. Every error is JSON in OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, with a 4xx status for what the client can fix
and 503 (with Retry-After) when the server is full or warming up. The app's state (engine,
metrics, API key) lives on ``app.state``; the endpoints are module functions that read it there.
Nothing heavy runs on the event loop: the engine resolves voices and chunks text on its threads,
and whole-file encodings run on Starlette's thread pool. docs/server.md describes the API.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import math
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .. import lang as _lang
from ..errors import G2PUnavailable, InvalidInput, KokoroError, SynthesisError, VoiceNotFound
from ..feed import check_speed
from ..voicepack import parse_blend
from .encode import Encoder, unsupported
from .engine import Busy, DeadlineExceeded, Engine, Piece, Request
from .metrics import Metrics

log = logging.getLogger("kokoro_runtime.server")
access_log = logging.getLogger("kokoro_runtime.access")

# OpenAI model names -> the bundle mode they ask for (when the bundle has it; else the default mode)
ALIASES = {"tts-1": "fast", "tts-1-hd": "quality", "gpt-4o-mini-tts": "fast", "kokoro": None}
FIELDS = frozenset({"model", "input", "voice", "speed", "response_format", "stream_format", "stream", "timestamps",
                    "instructions", "lang", "lang_code"})
MAX_BODY_BYTES = 1 << 20          # a 4,096-character input is at most ~25 KB of JSON
MAX_BLEND_TERMS = 64
MAX_INT_DIGITS = 32               # longer JSON integers are read as infinite (out of any field's range)
JSON_TYPES = ("application/json",)
LANGUAGE_HEADER = "X-Kokoro-Language"


class HTTPError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 headers: dict | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.kind, self.headers, self.code = status, param, kind, headers or {}, code


def error_response(e: HTTPError) -> JSONResponse:
    body = {"error": {"message": str(e), "type": e.kind, "param": e.param, "code": e.code}}
    return JSONResponse(body, status_code=e.status, headers=e.headers)


# -- the speech request, without HTTP -------------------------------------------------------------
@dataclass(frozen=True)
class SpeechRequest:
    """A validated ``POST /v1/audio/speech`` body. ``voice`` None: the bundle's default voice;
    ``lang`` None: the voice's language (else a canonical code such as ``ja``)."""

    input: str
    voice: str | None = None
    speed: float = 1.0
    model: str | None = None
    lang: str | None = None
    response_format: str = "mp3"
    stream_format: str = "audio"
    stream: bool = True
    timestamps: bool = False


def read_json(raw: bytes) -> Any:
    """A request body as JSON; InvalidInput on ``body`` when it is not UTF-8 JSON or nests too
    deeply to parse. Integers longer than MAX_INT_DIGITS digits read as +-inf, so a field that
    takes a number refuses them as out of range (Python refuses to convert very long ones)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("body", "not UTF-8 text; send a JSON object such as "
                                   '{"input": "Hello.", "voice": "af_heart"}') from None
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise InvalidInput("body", f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); send a JSON "
                                   'object such as {"input": "Hello.", "voice": "af_heart"}') from None
    except RecursionError:
        raise InvalidInput("body", "JSON nested too deeply to parse; a speech request is one flat JSON object") \
            from None


def _parse_int(digits: str) -> "int | float":
    if len(digits.lstrip("-")) <= MAX_INT_DIGITS:
        return int(digits)
    return -math.inf if digits.startswith("-") else math.inf


def parse_speech(body: Any, max_chars: int | None = None) -> SpeechRequest:
    """Validate a decoded speech body; InvalidInput naming the field (``body`` for the whole) on the
    first rule it breaks. A field given as null counts as not given."""
    if not isinstance(body, dict):
        raise InvalidInput("body", f"must be a JSON object, not {_json_type(body)}: "
                                   '{"input": "Hello.", "voice": "af_heart"}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidInput(unknown[0], f"unknown field; the fields are {', '.join(sorted(FIELDS))}")
    given = {k: v for k, v in body.items() if v is not None}
    text = given.get("input")
    if text is None:
        raise InvalidInput("input", "missing; give the text to speak")
    if not isinstance(text, str):
        raise InvalidInput("input", f"must be a string: the text to speak, not {_json_type(text)}")
    if not text.strip():
        raise InvalidInput("input", "empty; give the text to speak")
    if max_chars is not None and len(text) > max_chars:
        raise InvalidInput("input", f"{len(text)} characters; the limit is {max_chars}: "
                                    "split the text into several requests")
    voice = given.get("voice")
    if voice is not None:
        voice = check_voice(voice)
    speed = given.get("speed", 1.0)
    if isinstance(speed, float) and math.isinf(speed):
        raise InvalidInput("speed", "out of range (a number too large to hold); use a number from 0.25 to 4.0")
    speed = check_speed(speed)
    model = given.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidInput("model", f"must be a string, not {_json_type(model)}")
    fmt = given.get("response_format", "mp3")
    if not isinstance(fmt, str):
        raise InvalidInput("response_format", f"must be a string, not {_json_type(fmt)}")
    why = unsupported(fmt)
    if why:
        raise InvalidInput("response_format", why)
    stream_format = given.get("stream_format", "audio")
    if not isinstance(stream_format, str) or stream_format not in ("audio", "sse"):
        raise InvalidInput("stream_format", f"{stream_format!r}; use 'audio' or 'sse'")
    flags = {}
    for flag, default in (("stream", True), ("timestamps", False)):
        flags[flag] = given.get(flag, default)
        if not isinstance(flags[flag], bool):
            raise InvalidInput(flag, "must be true or false")
    instructions = given.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidInput("instructions", f"must be a string, not {_json_type(instructions)}")
    return SpeechRequest(text, voice, speed, model, check_lang(given), fmt, stream_format, **flags)


def check_voice(voice: Any) -> str:
    """A voice name, or a blend respelled ``a:w,b:w`` with each voice once (duplicates' weights
    added, first-come order kept: the first voice gives the language); InvalidInput on ``voice``
    for anything but a non-empty string, a malformed blend, or more than MAX_BLEND_TERMS terms."""
    if not isinstance(voice, str):
        raise InvalidInput("voice", f"must be a string (a voice name, or a blend such as 'a:0.7,b:0.3'), not "
                                    f"{_json_type(voice)}; leave it out for the default voice")
    if not voice.strip():
        raise InvalidInput("voice", "empty; give a voice name or a blend, or leave it out for the default voice")
    if not any(c in voice for c in ":,+("):
        return voice
    terms = voice.count("+") + 1 if ("+" in voice or "(" in voice) else voice.count(",") + 1
    if terms > MAX_BLEND_TERMS:
        raise InvalidInput("voice", f"a blend of {terms} terms; at most {MAX_BLEND_TERMS} are allowed")
    try:
        parts = parse_blend(voice)
    except VoiceNotFound as e:
        raise InvalidInput("voice", str(e)) from None
    weights: dict[str, float] = {}
    for name, w in parts:
        weights[name] = weights.get(name, 0.0) + w
    return ",".join(f"{name}:{w!r}" for name, w in weights.items())


def check_lang(body: dict) -> str | None:
    """The canonical code of ``lang`` (or its Kokoro-FastAPI alias ``lang_code``), None when neither
    is given; InvalidInput naming the field for an unknown language, or when the two disagree."""
    codes = {f: _lang.get(body[f], f).code for f in ("lang", "lang_code") if body.get(f) is not None}
    if len(set(codes.values())) > 1:
        raise InvalidInput("lang", f"lang {codes['lang']!r} and lang_code {codes['lang_code']!r} disagree; send one")
    return next(iter(codes.values()), None)


def mode_for(model: str | None, modes) -> str | None:
    """The bundle mode an OpenAI ``model`` asks for (None: the default mode); InvalidInput on
    ``model`` for a name this bundle does not serve."""
    if model is None:
        return None
    if model in modes:
        return model
    if model in ALIASES:
        wanted = ALIASES[model]
        return wanted if wanted in modes else None
    raise InvalidInput("model", f"{model!r} is not served here; use one of "
                                f"{', '.join(sorted(set(modes) | set(ALIASES)))}")


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "true or false"
    return {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(v), "null" if v is None else type(v).__name__)


# -- what a response tracks -----------------------------------------------------------------------
@dataclass
class _Tally:
    """One response's counts, for the metrics when it ends."""

    t0: float
    cached: bool = False
    audio_s: float = 0.0
    render_s: float = 0.0
    words: list = field(default_factory=list)
    gone: bool = False


class _ClientGone(Exception):
    """The client closed the connection before the response was ready."""


class _Cut(Exception):
    """A stream stopped after its headers were sent (deadline, model failure): end it unfinished."""


class _AudioStream(StreamingResponse):
    """A streamed body that a ``_Cut`` ends without its last chunk: the connection is closed, so the
    client sees a truncated transfer instead of a complete, shorter file."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except _Cut:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _metrics(request: HTTPRequest) -> Metrics:
    return request.app.state.metrics


def _engine(request: HTTPRequest) -> Engine:
    return request.app.state.engine


def authorize(request: HTTPRequest) -> None:
    key = request.app.state.api_key
    if not key:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        _metrics(request).errors.labels("unauthorized").inc()
        raise HTTPError(401, "missing or wrong API key; send 'Authorization: Bearer <key>'",
                        kind="authentication_error", code="invalid_api_key",
                        headers={"WWW-Authenticate": 'Bearer realm="kokoro_runtime"'})


async def read_body(request: HTTPRequest, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 415 unless it is sent as JSON (or with no Content-Type) and with 413
    past ``limit`` bytes."""
    ctype = request.headers.get("content-type")
    main = (ctype or "").split(";", 1)[0].strip().lower()
    if ctype is not None and main not in JSON_TYPES and not main.endswith("+json"):
        raise HTTPError(415, f"Content-Type {main or ctype!r}: send the body as application/json",
                        "content-type", code="unsupported_media_type")
    declared = request.headers.get("content-length", "")
    too_big = HTTPError(413, f"body: over {limit} bytes; a speech request is a small JSON object", "body",
                        code="body_too_large")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    buf = bytearray()
    async for part in request.stream():
        buf += part
        if len(buf) > limit:
            raise too_big
    return bytes(buf)


# -- routes ---------------------------------------------------------------------------------------
async def speech(request: HTTPRequest) -> Response:
    t0 = time.monotonic()
    engine, metrics = _engine(request), _metrics(request)
    authorize(request)
    body = read_json(await read_body(request))
    sr = parse_speech(body, engine.settings.max_chars)
    mode = mode_for(sr.model, engine.bundle.modes)
    if not engine.ready:
        raise HTTPError(503, "the server is warming up; retry in a second", kind="server_error",
                        headers={"Retry-After": "1"}, code="warming_up")
    req = Request(text=sr.input, voice=sr.voice if sr.voice is not None else engine.bundle.default_voice or "",
                  speed=sr.speed, mode=mode, lang=sr.lang)
    if request.app.state.log_text:
        log.info("speech: %r voice=%s speed=%s lang=%s", req.text, req.voice, req.speed, req.lang)
    tally = _Tally(t0)
    pieces = engine.render(req)
    try:         # admission, validation and the first chunk, before any header
        first = await _unless_gone(request, _first(pieces), tally, metrics)
    except _ClientGone:
        return Response(status_code=499)
    metrics.requests.labels(mode or engine.bundle.default_mode, sr.response_format, sr.stream_format).inc()
    tally.cached = first is not None and first.cached
    lang = first.lang if first is not None else (sr.lang or "")
    headers = {"Content-Language": lang, LANGUAGE_HEADER: lang} if lang else {}
    if sr.stream_format == "sse":
        return _AudioStream(_sse(pieces, first, sr, tally, metrics), media_type="text/event-stream",
                            headers={"Cache-Control": "no-store", **headers})
    if sr.timestamps or not sr.stream:     # one whole file (exact WAV sizes), or JSON with the words
        try:
            parts = await _unless_gone(request, _collect(_drain(pieces, first, tally, metrics)), tally, metrics)
        except _ClientGone:
            return Response(status_code=499)
        except _Cut as e:    # no header sent yet: the error's own status (counted once, by _drain)
            return kokoro_error_response(e.__cause__)  # type: ignore[arg-type]
        enc = Encoder(sr.response_format, n_samples=sum(len(p.pcm) for p in parts))
        data = await run_in_threadpool(_encode, enc, parts)
        _done(tally, metrics)
        if sr.timestamps:
            return JSONResponse({"audio": base64.b64encode(data).decode(), "format": sr.response_format,
                                 "sample_rate": 24000, "words": tally.words}, headers=headers)
        return Response(data, media_type=enc.content_type, headers=headers)
    return _AudioStream(_audio(pieces, first, sr.response_format, tally, metrics),
                        media_type=Encoder(sr.response_format).content_type, headers=headers)


async def voices(request: HTTPRequest) -> Response:
    """The bundle's voices, each with the language it speaks."""
    authorize(request)
    engine = _engine(request)
    bundle = engine.bundle
    if engine.ready:
        front = engine.load().front
        names, languages = front.voices, front.languages
    else:      # still warming up: the manifest says the same
        names = list(bundle.manifest.get("voice_names", []))
        languages = {v: _lang.voice_language(v, bundle.voice_languages, bundle.default_language).code for v in names}
    return JSONResponse({"voices": names, "default": bundle.default_voice,
                         "languages": languages, "default_language": bundle.default_language,
                         "data": [{"id": v, "name": v, "language": languages[v]} for v in names],
                         "blends": "a:0.7,b:0.3 or a(2)+b(1)"})


async def models(request: HTTPRequest) -> Response:
    authorize(request)
    bundle, engine = _engine(request).bundle, _engine(request)
    modes = bundle.modes
    created = int(engine.started)
    data = [{"id": m, "object": "model", "created": created, "owned_by": "kokoro_runtime",
             "default": m == bundle.default_mode} for m in modes]
    data += [{"id": a, "object": "model", "created": created, "owned_by": "kokoro_runtime",
              "mode": (w if w in modes else bundle.default_mode)} for a, w in ALIASES.items()]
    return JSONResponse({"object": "list", "data": data})


async def health(request: HTTPRequest) -> Response:
    engine = _engine(request)
    info = {"status": "ready" if engine.ready else "starting", "version": __version__,
            "bundle": str(engine.bundle.root), "modes": list(engine.bundle.modes),
            "default_mode": engine.bundle.default_mode, "instances": engine.settings.instances,
            "uptime_s": round(time.time() - engine.started, 1), "active": engine.active,
            "pid": os.getpid()}
    if request.app.state.startup_error:
        info.update(status="failed", error=request.app.state.startup_error)
        return JSONResponse(info, status_code=500)
    return JSONResponse(info, status_code=200 if engine.ready else 503)


async def metrics_route(request: HTTPRequest) -> Response:
    authorize(request)
    metrics = _metrics(request)
    return Response(metrics.render(), media_type=metrics.content_type)


# -- the speech response's parts --------------------------------------------------------------------
async def _first(pieces: AsyncGenerator[Piece, None]) -> Piece | None:
    try:
        return await pieces.__anext__()
    except StopAsyncIteration:
        return None
    except BaseException:
        await pieces.aclose()
        raise


async def _collect(pieces: AsyncGenerator[Piece, None]) -> list[Piece]:
    return [p async for p in pieces]


async def _disconnected(request: HTTPRequest) -> None:
    """Returns when the client closes the connection (the body is already read, so the server's
    next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_gone(request: HTTPRequest, work: Awaitable, tally: _Tally, metrics: Metrics):
    """``work``'s result, or _ClientGone once the client has left, with ``work`` cancelled (which
    stops the engine's model run and frees its instance)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
    if task.done():          # finished (or failed) before the client left
        return task.result()
    await asyncio.gather(task, return_exceptions=True)    # let the engine's job unwind
    _left(tally, metrics)
    raise _ClientGone


def _left(tally: _Tally, metrics: Metrics) -> None:
    if not tally.gone:
        tally.gone = True
        metrics.disconnects.inc()
        metrics.errors.labels("client_disconnected").inc()


async def _drain(pieces: AsyncGenerator[Piece, None], first: Piece | None, tally: _Tally,
                 metrics: Metrics) -> AsyncGenerator[Piece, None]:
    """The pieces, counted; stops the engine's iterator on any exit (a client that left). An error
    after the first piece is counted here, once, and raised as _Cut."""
    try:
        if first is not None:
            _count(first, tally, metrics)
            yield first
        async for p in pieces:
            _count(p, tally, metrics)
            yield p
    except asyncio.CancelledError:
        _left(tally, metrics)
        raise
    except KokoroError as e:
        metrics.errors.labels(_kind(e)).inc()
        log.warning("stream stopped after %.2f s of audio: %s", tally.audio_s, e)
        raise _Cut(str(e)) from e
    finally:
        await pieces.aclose()


def _count(p: Piece, tally: _Tally, metrics: Metrics) -> None:
    if tally.audio_s == 0.0:
        metrics.ttfa.labels("hit" if tally.cached else "miss").observe(time.monotonic() - tally.t0)
    tally.audio_s += p.seconds
    tally.render_s += p.render_s
    tally.words += [{"word": w.word, "start": w.start, "end": w.end} for w in p.words]


def _done(tally: _Tally, metrics: Metrics) -> None:
    metrics.latency.observe(time.monotonic() - tally.t0)
    metrics.audio_seconds.inc(tally.audio_s)
    if not tally.cached and tally.audio_s > 0:
        metrics.rtf.observe(tally.render_s / tally.audio_s)


def _encode(enc: Encoder, parts: list[Piece]) -> bytes:
    return b"".join(enc.feed(p.pcm) for p in parts) + enc.close()


async def _encoded(enc: Encoder, step: Callable[..., bytes], *args) -> bytes:
    """An encoder step: inline for raw PCM and WAV, on a worker thread for libsndfile's codecs."""
    if enc.fmt in ("pcm", "wav"):
        return step(*args)
    return await run_in_threadpool(step, *args)


async def _audio(pieces, first, fmt: str, tally: _Tally, metrics: Metrics) -> AsyncIterator[bytes]:
    enc = Encoder(fmt)
    async for p in _drain(pieces, first, tally, metrics):
        data = await _encoded(enc, enc.feed, p.pcm)
        if data:
            yield data
    tail = await _encoded(enc, enc.close)
    if tail:
        yield tail
    _done(tally, metrics)


async def _sse(pieces, first, sr: SpeechRequest, tally: _Tally, metrics: Metrics) -> AsyncIterator[bytes]:
    enc = Encoder(sr.response_format)
    try:
        async for p in _drain(pieces, first, tally, metrics):
            data = await _encoded(enc, enc.feed, p.pcm)
            event: dict[str, Any] = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
            if sr.timestamps:
                event["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in p.words]
            yield _event(event)
        tail = await _encoded(enc, enc.close)
        if tail:
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(tail).decode()})
        n = len(sr.input)
        yield _event({"type": "speech.audio.done", "usage": {"input_tokens": n, "output_tokens": 0, "total_tokens": n}})
        _done(tally, metrics)
    except _Cut as e:   # headers are sent: the error goes in the stream (counted by _drain)
        kind = _kind(e.__cause__) if e.__cause__ is not None else "internal"
        yield _event({"type": "error", "error": {"message": str(e), "type": kind}})


def _event(obj: dict) -> bytes:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


def _kind(e: BaseException) -> str:
    return {Busy: "busy", DeadlineExceeded: "deadline", SynthesisError: "synthesis", VoiceNotFound: "voice_not_found",
            G2PUnavailable: "g2p_unavailable", InvalidInput: "invalid_input"}.get(type(e), "invalid_request")


# -- errors ---------------------------------------------------------------------------------------
async def on_http_error(request: HTTPRequest, e: Exception) -> Response:
    return error_response(e)  # type: ignore[arg-type]


async def on_kokoro_error(request: HTTPRequest, e: Exception) -> Response:
    _metrics(request).errors.labels(_kind(e)).inc()
    return kokoro_error_response(e)  # type: ignore[arg-type]


def kokoro_error_response(e: KokoroError) -> Response:
    """A runtime error as the API's JSON error: 503 busy, 504 deadline, 500 model failure, else a
    400 naming the field."""
    if isinstance(e, Busy):
        return error_response(HTTPError(503, str(e), kind="server_error", code="busy",
                                        headers={"Retry-After": str(e.retry_after)}))
    if isinstance(e, DeadlineExceeded):
        return error_response(HTTPError(504, str(e), kind="server_error", code="deadline_exceeded"))
    if isinstance(e, SynthesisError):
        return error_response(HTTPError(500, str(e), kind="server_error", code="synthesis_failed"))
    param = e.field if isinstance(e, InvalidInput) else "voice" if isinstance(e, VoiceNotFound) else \
        "input" if isinstance(e, G2PUnavailable) else None
    return error_response(HTTPError(400, str(e), param))


async def on_crash(request: HTTPRequest, e: Exception) -> Response:
    _metrics(request).errors.labels("internal").inc()
    log.exception("internal error on %s", request.url.path)
    return error_response(HTTPError(500, f"internal error ({type(e).__name__}); see the server log",
                                    kind="server_error", code="internal_error"))


async def on_route_error(request: HTTPRequest, e: Exception) -> Response:
    """Starlette's own 404 and 405 (with its Allow header), in the API's error shape."""
    status = getattr(e, "status_code", 404)
    headers = dict(getattr(e, "headers", None) or {})
    where = f"{request.method} {request.url.path}"
    if status == 404:
        return error_response(HTTPError(404, f"{where}: no such route", kind="not_found", code="not_found"))
    if status == 405:
        allow = headers.get("Allow", "")
        return error_response(HTTPError(405, f"{where}: method not allowed; use {allow}", headers=headers,
                                        code="method_not_allowed"))
    return error_response(HTTPError(status, f"{where}: {getattr(e, 'detail', '')}", headers=headers))


# -- the access log ---------------------------------------------------------------------------------
class AccessLog:
    """One line per request once its response ends: client, request line, status, the language it
    was spoken in (``-`` for other routes) and seconds taken. It replaces uvicorn's access log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.monotonic()
        seen: dict[str, Any] = {"status": 500, "lang": "-"}

        async def tap(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for k, v in message.get("headers", []):
                    if k.lower() == LANGUAGE_HEADER.lower().encode():
                        seen["lang"] = v.decode("latin-1")
            await send(message)
        try:
            await self.app(scope, receive, tap)
        finally:
            client = scope.get("client")
            who = f"{client[0]}:{client[1]}" if client else "-"
            path = scope.get("path", "")
            access_log.info('%s "%s %s HTTP/%s" %d lang=%s %.3fs', who, scope.get("method"), path,
                            scope.get("http_version", "1.1"), seen["status"], seen["lang"], time.monotonic() - t0)


# -- the app ----------------------------------------------------------------------------------------
ROUTES = [Route("/v1/audio/speech", speech, methods=["POST"]),
          Route("/v1/audio/voices", voices, methods=["GET"]),
          Route("/v1/models", models, methods=["GET"]),
          Route("/health", health, methods=["GET"]),
          Route("/metrics", metrics_route, methods=["GET"])]


@asynccontextmanager
async def lifespan(app: Starlette):
    """Warm the default mode in the background (``/health`` answers 503 until it is done); at
    shutdown stop the engine and run ``app.state.on_shutdown`` (run.py removes its Unix socket)."""
    engine: Engine = app.state.engine
    task = None
    if app.state.warm and not engine.ready:
        async def warm_up() -> None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, engine.warm_up)
                log.info("ready: %s", engine.bundle.root)
            except Exception as e:  # reported by /health; the server stays up to say why
                app.state.startup_error = f"{type(e).__name__}: {e}"
                log.error("warm-up failed: %s", app.state.startup_error)
        task = asyncio.create_task(warm_up())
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
        engine.close()
        for hook in app.state.on_shutdown:
            hook()


def create_app(engine: Engine, *, api_key: str | None = None, log_text: bool = False, warm: bool = True,
               metrics: Metrics | None = None, on_shutdown: list[Callable[[], None]] | None = None) -> Starlette:
    """The ASGI app over ``engine``. ``warm``: load and warm the default mode in the background at
    start-up; tests may pass an already warm engine. ``metrics``: the Metrics the engine reports to
    (``Engine(..., observe=metrics.observe)``); a new one when not given (its cache counters then
    stay at zero). ``on_shutdown``: callables run when the server shuts down."""
    metrics = metrics or Metrics()
    metrics.bind(engine)
    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(AccessLog)],
        exception_handlers={HTTPError: on_http_error, KokoroError: on_kokoro_error,
                            StarletteHTTPException: on_route_error, Exception: on_crash},
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.api_key = api_key
    app.state.log_text = log_text
    app.state.warm = warm
    app.state.startup_error = None
    app.state.on_shutdown = list(on_shutdown or [])
    return app
