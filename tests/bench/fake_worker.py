"""A stand-in worker for isolation tests: speaks the worker protocol but misbehaves on request.

``python tests/bench/fake_worker.py crash|hang|exit --memory-mb N``: answers ``load`` normally,
then on ``run`` it aborts (SIGABRT), sleeps forever, or exits with code 3."""

import json
import os
import sys
import time

mode = sys.argv[1]
for line in sys.stdin:
    req = json.loads(line)
    if req["cmd"] == "load":
        print(json.dumps({"ok": True, "load_s": 0.01, "providers": ["CPUExecutionProvider"], "rss_mb": 1.0}), flush=True)
    elif req["cmd"] == "quit":
        print('{"ok": true}', flush=True)
        break
    elif mode == "crash":
        os.abort()
    elif mode == "hang":
        time.sleep(3600)
    elif mode == "exit":
        sys.exit(3)
