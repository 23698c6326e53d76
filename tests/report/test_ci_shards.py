"""docs/ci/: the sharded CI example's steps (kopt-ci.sh) run here as separate processes, one per "machine"
job with its own store, then the merge job; the merged selection must equal a one-machine build's, and the
workflow must cover the default recipe's providers with its matrix."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kopt.cli.main import app
from tests.graphs import tiny_kokoro, tiny_voices
from tests.pipeline.test_pipeline_tiny import RECIPE

REPO = Path(__file__).resolve().parents[2]
CI = REPO / "docs" / "ci"


def _env(arts: Path) -> dict[str, str]:
    env = dict(os.environ, KOPT=f"{sys.executable} -m kopt.cli.main", PYTHON=sys.executable,
               KOPT_ARTIFACTS=str(arts))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _ci(tmp: Path, arts: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(["bash", str(CI / "kopt-ci.sh"), *args], env=_env(arts), cwd=tmp, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"kopt-ci.sh {' '.join(args)}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.skipif(shutil.which("bash") is None, reason="the CI steps are a bash script")
def test_sharded_jobs_and_merge_equal_a_one_machine_build(tmp_path):
    tiny_kokoro(tmp_path / "tiny.onnx")
    np.savez(tmp_path / "voices.npz", **tiny_voices())
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE.format(model=tmp_path / "tiny.onnx", voices=tmp_path / "voices.npz", per_channel="false",
                                    constraints="constraints = {}"))
    # the matrix: a CPU job and a "CUDA" job (no GPU here: its cells are recorded as skipped, with the reason),
    # each a separate process with its own store, as on separate runners
    _ci(tmp_path, tmp_path / "arts-cpu", "shard", str(recipe), "out/cpu", "--provider", "cpu", "--shard", "1/1")
    _ci(tmp_path, tmp_path / "arts-cuda", "shard", str(recipe), "out/cuda", "--provider", "cuda", "--shard", "1/1")
    results = tmp_path / "results"
    results.mkdir()
    for job in ("cpu", "cuda"):
        d = json.loads((tmp_path / "out" / job / "build.json").read_text())
        assert d["shard"] == "1/1" and d["winners"] == {} and d["bundle"] is None  # measured, not selected
        provs = {json.loads(x)["provider"]["config"] for x in open(d["results"]) if '"kind": "bench"' in x}
        assert provs == {job}
        for f in (tmp_path / "out" / job / "results").iterdir():
            shutil.copy(f, results / f.name)

    # one machine doing it all, on the CPU job's store (so it reuses the same measurements: timings are noise)
    r = CliRunner().invoke(app, ["--artifacts", str(tmp_path / "arts-cpu"), "--json", "build", str(recipe),
                                 "--no-publish"])
    assert r.exit_code == 0, r.output
    one = json.loads(r.stdout)
    assert one["measured"]["bench_cells"] == 0 and one["measured"]["quality"] == 0

    # the merge job, against the one-machine build's results as "the last release"
    _ci(tmp_path, tmp_path / "arts-cpu", "merge", str(recipe), str(results), "merged", one["results"])
    merged = json.loads((tmp_path / "merged" / "report" / "selection.json").read_text())
    single = json.loads((Path(one["report"]).parent / "selection.json").read_text())
    assert merged == single
    assert [g["provider"] for g in merged["groups"]] == ["cpu", "cuda"]
    win = next(g for g in merged["groups"] if g["provider"] == "cpu")
    assert win["winner_key"] == one["winners"]["cpu"]["key"]
    assert json.loads((tmp_path / "merged" / "verdict.json").read_text())["verdict"] == "ok"
    manifest = json.loads((tmp_path / "merged" / "bundle" / "manifest.json").read_text())
    assert manifest["variant"]["key"] == win["winner_key"]
    html = (tmp_path / "merged" / "report" / "index.html").read_text()
    # 3 models on 3 English and 3 Japanese short sentences (the recipe scores both languages)
    assert html.count("<audio controls") == 18 and "kopt build: tiny (merged)" in html
    md = (tmp_path / "merged" / "report" / "results.md").read_text()
    assert "- cuda: CUDAExecutionProvider is not in this onnxruntime build" in md


def test_merge_fails_cleanly_without_results(tmp_path):
    (tmp_path / "none").mkdir()
    r = subprocess.run(["bash", str(CI / "kopt-ci.sh"), "merge", str(REPO / "recipes" / "ci.toml"),
                        str(tmp_path / "none"), str(tmp_path / "out")], env=_env(tmp_path / "arts"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("kopt: error: no records in")
    r = subprocess.run(["bash", str(CI / "kopt-ci.sh"), "nonsense"], capture_output=True, text=True)
    assert r.returncode == 1 and "usage: kopt-ci.sh shard" in r.stderr


def test_workflow_matrix_covers_the_default_recipe():
    """Every provider preset of recipes/default.toml is measured by exactly one matrix job, each job runs the
    script's shard step and the merge job its merge step."""
    import tomllib

    wf = (CI / "kopt-sharded.yml").read_text()
    recipe = tomllib.loads((REPO / "recipes" / "default.toml").read_text())
    args = re.findall(r"build-args: (?:>-\n((?:\s{14}.*\n)+)|(.*)\n)", wf)
    jobs = [" ".join((a or b).split()) for a, b in args]
    assert len(jobs) == 3 and all(j.endswith("--shard 1/1") for j in jobs)
    provs = [p for j in jobs for p in re.findall(r"--provider (\S+)", j)]
    assert sorted(provs) == sorted(recipe["bench"]["providers"])
    assert 'bash docs/ci/kopt-ci.sh shard "$RECIPE" "ci-out/${{ matrix.name }}" ${{ matrix.build-args }}' in wf
    assert "bash docs/ci/kopt-ci.sh merge \"$RECIPE\" ci-out/results ci-out/merged $baseline" in wf
    assert re.search(r"RECIPE: recipes/default\.toml", wf)


def test_build_provider_option(tmp_path):
    """--provider keeps a subset of the recipe's presets (--dry-run shows it); another preset is a one-line error."""
    recipe = REPO / "recipes" / "ci.toml"
    r = subprocess.run([sys.executable, "-m", "kopt.cli.main", "--artifacts", str(tmp_path / "a"), "build", str(recipe),
                        "--provider", "tpu"], env=_env(tmp_path / "a"), capture_output=True, text=True, timeout=120)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0] == f"kopt: error: --provider tpu: not one of {recipe}'s [bench] providers (cpu, cuda, coreml-all)"
    r = CliRunner().invoke(app, ["build", str(recipe), "--provider", "coreml-all", "--provider", "cpu", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["bench"]["providers"] == ["coreml-all", "cpu"]
    assert not (tmp_path / "a").exists()
