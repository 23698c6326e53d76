"""The HTTP API (Starlette): OpenAI's ``POST /v1/audio/speech`` and a few read-only routes.

Routes parse and validate a request, hand it to the ``Engine`` and stream what it renders. Every
error is JSON in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with a 4xx
status for what the client can fix and 503 (with Retry-After) when the server is full or warming up.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import __version__
from ..errors import G2PUnavailable, InvalidInput, KokoroError, SynthesisError, VoiceNotFound
from .encode import Encoder, unsupported
from .engine import Busy, DeadlineExceeded, Engine, Piece, Request
from .metrics import Metrics

log = logging.getLogger("kokoro_runtime.server")

# OpenAI model names -> the bundle mode they ask for (when the bundle has it; else the default mode)
ALIASES = {"tts-1": "fast", "tts-1-hd": "quality", "gpt-4o-mini-tts": "fast", "kokoro": None}
_FIELDS = {"model", "input", "voice", "speed", "response_format", "stream_format", "stream", "timestamps",
           "instructions"}


class HTTPError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 headers: dict | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.kind, self.headers, self.code = status, param, kind, headers or {}, code


def error_response(e: HTTPError) -> JSONResponse:
    body = {"error": {"message": str(e), "type": e.kind, "param": e.param, "code": e.code}}
    return JSONResponse(body, status_code=e.status, headers=e.headers)


def create_app(engine: Engine, *, api_key: str | None = None, log_text: bool = False,
               warm: bool = True) -> Starlette:
    """The ASGI app over ``engine``. ``warm``: load and warm the default mode in the background at
    start-up (``/health`` answers 503 until it is done); tests may pass an already warm engine."""
    metrics = Metrics()
    metrics.bind(engine)
    engine._observe = metrics.observe

    def authorize(request: HTTPRequest) -> None:
        if not api_key:
            return
        got = request.headers.get("authorization", "")
        scheme, _, token = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            metrics.errors.labels("unauthorized").inc()
            raise HTTPError(401, "missing or wrong API key; send 'Authorization: Bearer <key>'",
                            kind="authentication_error", code="invalid_api_key",
                            headers={"WWW-Authenticate": 'Bearer realm="kokoro_runtime"'})

    def mode_for(model: Any) -> str | None:
        if model is None:
            return None
        if not isinstance(model, str):
            raise HTTPError(400, "model: must be a string", "model")
        modes = engine.bundle.modes
        if model in modes:
            return model
        if model in ALIASES:
            wanted = ALIASES[model]
            return wanted if wanted in modes else None
        raise HTTPError(400, f"model: {model!r} is not served here; use one of "
                        f"{', '.join(sorted(set(modes) | set(ALIASES)))}", "model", code="model_not_found")

    async def speech(request: HTTPRequest) -> Response:
        t0 = time.monotonic()
        authorize(request)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HTTPError(400, "the body is not valid JSON; send {\"input\": ..., \"voice\": ...}") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object")
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise HTTPError(400, f"{unknown[0]}: unknown field; the fields are {', '.join(sorted(_FIELDS))}",
                            unknown[0])
        fmt = body.get("response_format", "mp3")
        if not isinstance(fmt, str) or unsupported(fmt):
            raise HTTPError(400, f"response_format: {unsupported(fmt) if isinstance(fmt, str) else 'must be a string'}",
                            "response_format")
        stream_format = body.get("stream_format", "audio")
        if stream_format not in ("audio", "sse"):
            raise HTTPError(400, f"stream_format: {stream_format!r}; use 'audio' or 'sse'", "stream_format")
        for flag in ("stream", "timestamps"):
            if not isinstance(body.get(flag, True), bool):
                raise HTTPError(400, f"{flag}: must be true or false", flag)
        stream = body.get("stream", True)
        timestamps = body.get("timestamps", False)
        if not engine.ready:
            raise HTTPError(503, "the server is warming up; retry in a second", kind="server_error",
                            headers={"Retry-After": "1"}, code="warming_up")
        req = Request(text=body.get("input"), voice=body.get("voice") or engine.bundle.default_voice or "",
                      speed=body.get("speed", 1.0), mode=mode_for(body.get("model")))
        if log_text:
            log.info("speech: %r voice=%s speed=%s", req.text, req.voice, req.speed)
        pieces = engine.render(req)
        try:
            first = await pieces.__anext__()    # admission, validation and the first chunk, before any header
        except StopAsyncIteration:
            first = None
        except BaseException:
            await pieces.aclose()
            raise
        mode = req.mode or engine.bundle.default_mode
        metrics.requests.labels(mode, fmt, stream_format).inc()
        cached = first is not None and first.cached
        state = {"t0": t0, "cached": cached, "audio_s": 0.0, "render_s": 0.0, "words": []}
        if stream_format == "sse":
            return StreamingResponse(_sse(pieces, first, fmt, timestamps, state, req), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store"})
        if timestamps or not stream:     # one whole file (exact WAV sizes), or JSON with the words
            parts = [p async for p in _drain(pieces, first, state)]
            enc = Encoder(fmt, n_samples=sum(len(p.pcm) for p in parts))
            data = b"".join(enc.feed(p.pcm) for p in parts) + enc.close()
            _done(state)
            if timestamps:
                return JSONResponse({"audio": base64.b64encode(data).decode(), "format": fmt,
                                     "sample_rate": 24000, "words": state["words"]})
            return Response(data, media_type=enc.content_type)
        return StreamingResponse(_audio(pieces, first, fmt, state), media_type=Encoder(fmt).content_type)

    async def _drain(pieces: AsyncIterator[Piece], first: Piece | None, state: dict) -> AsyncIterator[Piece]:
        """The pieces, counted; stops the engine's iterator on any exit (a client that left)."""
        try:
            if first is not None:
                _count(first, state)
                yield first
            async for p in pieces:
                _count(p, state)
                yield p
        except asyncio.CancelledError:
            metrics.disconnects.inc()
            metrics.errors.labels("client_disconnected").inc()
            raise
        except KokoroError as e:
            metrics.errors.labels(_kind(e)).inc()
            log.warning("stream stopped: %s", e)
            raise
        finally:
            await pieces.aclose()

    def _count(p: Piece, state: dict) -> None:
        if state["audio_s"] == 0.0:
            metrics.ttfa.labels("hit" if state["cached"] else "miss").observe(time.monotonic() - state["t0"])
        state["audio_s"] += p.seconds
        state["render_s"] += p.render_s
        state["words"] += [{"word": w.word, "start": w.start, "end": w.end} for w in p.words]

    def _done(state: dict) -> None:
        metrics.latency.observe(time.monotonic() - state["t0"])
        metrics.audio_seconds.inc(state["audio_s"])
        if not state["cached"] and state["audio_s"] > 0:
            metrics.rtf.observe(state["render_s"] / state["audio_s"])

    async def _audio(pieces, first, fmt: str, state: dict) -> AsyncIterator[bytes]:
        enc = Encoder(fmt)
        async for p in _drain(pieces, first, state):
            data = enc.feed(p.pcm)
            if data:
                yield data
        tail = enc.close()
        if tail:
            yield tail
        _done(state)

    async def _sse(pieces, first, fmt: str, timestamps: bool, state: dict, req: Request) -> AsyncIterator[bytes]:
        enc = Encoder(fmt)
        try:
            async for p in _drain(pieces, first, state):
                event: dict[str, Any] = {"type": "speech.audio.delta", "audio": base64.b64encode(enc.feed(p.pcm)).decode()}
                if timestamps:
                    event["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in p.words]
                yield _event(event)
            tail = enc.close()
            if tail:
                yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(tail).decode()})
            n = len(req.text)
            yield _event({"type": "speech.audio.done",
                          "usage": {"input_tokens": n, "output_tokens": 0, "total_tokens": n}})
            _done(state)
        except KokoroError as e:   # headers are sent: the error goes in the stream
            yield _event({"type": "error", "error": {"message": str(e), "type": _kind(e)}})

    async def voices(request: HTTPRequest) -> Response:
        authorize(request)
        front = engine.load().front if engine.ready else None
        names = front.voices if front else list(engine.bundle.manifest.get("voice_names", []))
        return JSONResponse({"voices": names, "default": engine.bundle.default_voice,
                             "blends": "a:0.7,b:0.3 or a(2)+b(1)"})

    async def models(request: HTTPRequest) -> Response:
        authorize(request)
        modes = engine.bundle.modes
        created = int(engine.started)
        data = [{"id": m, "object": "model", "created": created, "owned_by": "kokoro_runtime",
                 "default": m == engine.bundle.default_mode} for m in modes]
        data += [{"id": a, "object": "model", "created": created, "owned_by": "kokoro_runtime",
                  "mode": (w if w in modes else engine.bundle.default_mode)} for a, w in ALIASES.items()]
        return JSONResponse({"object": "list", "data": data})

    async def health(request: HTTPRequest) -> Response:
        info = {"status": "ready" if engine.ready else "starting", "version": __version__,
                "bundle": str(engine.bundle.root), "modes": list(engine.bundle.modes),
                "default_mode": engine.bundle.default_mode, "instances": engine.settings.instances,
                "uptime_s": round(time.time() - engine.started, 1), "active": engine.active,
                "pid": _pid()}
        if getattr(app.state, "startup_error", None):
            info.update(status="failed", error=app.state.startup_error)
            return JSONResponse(info, status_code=500)
        return JSONResponse(info, status_code=200 if engine.ready else 503)

    async def metrics_route(request: HTTPRequest) -> Response:
        authorize(request)
        return Response(metrics.render(), media_type=metrics.content_type)

    async def on_http_error(request: HTTPRequest, e: Exception) -> Response:
        return error_response(e)  # type: ignore[arg-type]

    async def on_kokoro_error(request: HTTPRequest, e: Exception) -> Response:
        kind = _kind(e)
        metrics.errors.labels(kind).inc()
        if isinstance(e, Busy):
            return error_response(HTTPError(503, str(e), kind="server_error", code="busy",
                                            headers={"Retry-After": str(e.retry_after)}))
        if isinstance(e, DeadlineExceeded):
            return error_response(HTTPError(504, str(e), kind="server_error", code="deadline_exceeded"))
        if isinstance(e, SynthesisError):
            return error_response(HTTPError(500, str(e), kind="server_error", code="synthesis_failed"))
        param = e.field if isinstance(e, InvalidInput) else "voice" if isinstance(e, VoiceNotFound) else \
            "input" if isinstance(e, G2PUnavailable) else None
        if isinstance(e, InvalidInput) and e.field == "model":
            param = "model"
        return error_response(HTTPError(400, str(e), param))

    async def on_crash(request: HTTPRequest, e: Exception) -> Response:
        metrics.errors.labels("internal").inc()
        log.exception("internal error on %s", request.url.path)
        return error_response(HTTPError(500, f"internal error ({type(e).__name__}); see the server log",
                                        kind="server_error", code="internal_error"))

    async def not_found(request: HTTPRequest, e: Exception) -> Response:
        status = getattr(e, "status_code", 404)
        msg = "no such route" if status == 404 else "method not allowed"
        return error_response(HTTPError(status, f"{request.method} {request.url.path}: {msg}", kind="not_found"))

    @asynccontextmanager
    async def lifespan(app: Starlette):
        task = None
        if warm and not engine.ready:
            async def warm_up() -> None:
                try:
                    await asyncio.get_running_loop().run_in_executor(None, engine.warm_up)
                    log.info("ready: %s", engine.bundle.root)
                except Exception as e:  # reported by /health; the server stays up to say why
                    app.state.startup_error = f"{type(e).__name__}: {e}"
                    log.error("warm-up failed: %s", app.state.startup_error)
            task = asyncio.create_task(warm_up())
        app.state.engine = engine
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            engine.close()

    app = Starlette(
        routes=[Route("/v1/audio/speech", speech, methods=["POST"]),
                Route("/v1/audio/voices", voices, methods=["GET"]),
                Route("/v1/models", models, methods=["GET"]),
                Route("/health", health, methods=["GET"]),
                Route("/metrics", metrics_route, methods=["GET"])],
        exception_handlers={HTTPError: on_http_error, KokoroError: on_kokoro_error, 404: not_found, 405: not_found,
                            Exception: on_crash},
        lifespan=lifespan,
    )
    app.state.startup_error = None
    app.state.metrics = metrics
    return app


def _event(obj: dict) -> bytes:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


def _kind(e: BaseException) -> str:
    return {Busy: "busy", DeadlineExceeded: "deadline", SynthesisError: "synthesis", VoiceNotFound: "voice_not_found",
            G2PUnavailable: "g2p_unavailable", InvalidInput: "invalid_input"}.get(type(e), "invalid_request")


def _pid() -> int:
    import os

    return os.getpid()
