"""``python -m kokoro_runtime serve``: the app under uvicorn on a TCP port or a Unix socket.

The socket is bound here, before uvicorn starts, so ``--port 0`` works (the chosen port is printed
on the first line of stdout) and a Unix socket is made private (0600) before anyone can connect.
With ``--idle-timeout`` the server exits once it has been idle that long (the ``say`` daemon).

A Unix socket is removed when the server shuts down, in the app's lifespan shutdown: uvicorn
re-raises the SIGTERM it caught once its graceful shutdown is done, so code after ``serve()``
never runs on ``stop``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import stat
import sys
from pathlib import Path

from ..bundle import Bundle
from ..errors import InvalidInput, KokoroError
from .engine import Engine, Settings, add_engine_arguments
from .metrics import Metrics

API_KEY_ENV = "KOKORO_API_KEY"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", nargs="?", type=Path, default=None,
                   help="bundle directory (default: the bundle this runtime sits in)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8880, help="TCP port (0: any free port, printed at start)")
    p.add_argument("--uds", type=Path, default=None, help="serve on this Unix socket (mode 0600) instead of TCP")
    add_engine_arguments(p, queue_full="503 + Retry-After", max_chars="longest input accepted, as OpenAI's")
    p.add_argument("--api-key", default=None,
                   help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV} if set, else no auth)")
    p.add_argument("--log-text", action="store_true", help="log each request's text (off: text is never logged)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def settings_from(args: argparse.Namespace) -> Settings:
    for name, low in (("instances", 1), ("threads", 0), ("queue", 0), ("max_chars", 1)):
        if getattr(args, name) < low:
            raise InvalidInput(f"--{name.replace('_', '-')}", f"{getattr(args, name)}; use {low} or more")
    for name in ("timeout", "cache_mb", "idle_timeout"):
        v = getattr(args, name)
        if not v == v or v < 0 or (name == "timeout" and v == 0):
            raise InvalidInput(f"--{name.replace('_', '-')}", f"{v}; use a number above 0")
    if args.port < 0 or args.port > 65535:
        raise InvalidInput("--port", f"{args.port}; use 0-65535")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.instances)
    return Settings(instances=args.instances, threads=threads, queue=args.queue, timeout_s=args.timeout,
                    cache_mb=args.cache_mb, max_chars=args.max_chars, providers=tuple(args.providers or ()),
                    fallback=args.fallback, verify=not args.no_verify)


def bind(host: str, port: int, uds: Path | None) -> tuple[socket.socket, str]:
    if uds is not None:
        uds = Path(uds)
        if uds.exists() or uds.is_symlink():
            if not stat.S_ISSOCK(uds.lstat().st_mode):
                raise InvalidInput("--uds", f"{uds} exists and is not a socket; choose another path")
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(uds))
                raise InvalidInput("--uds", f"{uds}: a server already listens there")
            except (ConnectionRefusedError, FileNotFoundError):
                uds.unlink()                      # a dead server's socket
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(uds))
        finally:
            os.umask(old)
        os.chmod(uds, 0o600)
        return sock, f"unix:{uds}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InvalidInput("--port", f"cannot bind {host}:{port} ({e.strerror}); choose another port or 0") from None
    real = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return sock, f"http://{shown}:{real}"


def serve(args: argparse.Namespace, root: Path) -> int:
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = settings_from(args)
    bundle = Bundle(root, verify=settings.verify)
    metrics = Metrics()
    engine = Engine(bundle, settings, observe=metrics.observe)
    engine.load()          # sessions now, so a bad model or provider fails here in one line; warm-up follows
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    sock, where = bind(args.host, args.port, args.uds)
    cleanup = _Cleanup(sock, args.uds)
    app = create_app(engine, api_key=api_key, log_text=args.log_text, metrics=metrics, on_shutdown=[cleanup])
    # the app writes the access log (with each response's language); uvicorn's own is off
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    print(f"kokoro_runtime {where} serving {bundle.root} (modes: {', '.join(bundle.modes)}; "
          f"{settings.instances} x {settings.threads} threads)", flush=True)

    async def main() -> None:
        watcher = asyncio.create_task(_idle_watch(server, app, args.idle_timeout)) if args.idle_timeout else None
        try:
            await server.serve(sockets=[sock])
        finally:
            if watcher:
                watcher.cancel()

    try:
        asyncio.run(main())
    finally:
        cleanup()          # when serve() returns or fails without a signal to re-raise
    return 0


class _Cleanup:
    """Close the listening socket and remove a Unix socket's file, once."""

    def __init__(self, sock: socket.socket, uds: Path | None) -> None:
        self.sock, self.uds, self.done = sock, uds, False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        self.sock.close()
        if self.uds is not None:
            try:
                Path(self.uds).unlink()
            except FileNotFoundError:
                pass


async def _idle_watch(server, app, idle_s: float) -> None:
    """Ask the server to exit once the engine has been idle ``idle_s`` seconds since it was ready
    (or since warm-up failed): a slow warm-up is not idleness."""
    engine: Engine = app.state.engine
    while not server.should_exit:
        await asyncio.sleep(min(1.0, idle_s / 4))
        started = engine.ready or app.state.startup_error
        if started and engine.idle_for(idle_s):
            logging.getLogger("kokoro_runtime.server").info("idle for %.0f s: exiting", idle_s)
            server.should_exit = True


def command(prog: str, description: str, add_args, serve_fn, argv: list[str], default_bundle: Path | None) -> int:
    """A server command's entry (serve, wyoming): parse, find the bundle, run; a KokoroError is one
    line and exit 1, Ctrl-C a clean exit."""
    from ..__main__ import Parser

    p = Parser(prog=prog, description=description)
    add_args(p)
    args = p.parse_args(argv)
    root = args.bundle or default_bundle
    try:
        if root is None:
            raise InvalidInput("bundle", "none given; pass the bundle directory (or run from inside one)")
        return serve_fn(args, root)
    except KokoroError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def main(argv: list[str], default_bundle: Path | None) -> int:
    return command("python -m kokoro_runtime serve", "Serve a Kokoro bundle over an OpenAI-compatible HTTP API.",
                   add_arguments, serve, argv, default_bundle)
