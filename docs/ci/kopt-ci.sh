#!/usr/bin/env bash
# The two steps of kopt's sharded CI build (docs/ci/kopt-sharded.yml runs them; so does
# tests/report/test_ci_shards.py, locally, as separate processes).
#
#   kopt-ci.sh shard RECIPE OUT [kopt build options]   one matrix job: measure its slice, keep the results
#       e.g. kopt-ci.sh shard recipes/default.toml ci-out/cpu --provider cpu --shard 1/1
#       writes OUT/results/<run>.jsonl (the slice's records) and OUT/build.json (kopt's summary)
#   kopt-ci.sh merge RECIPE RESULTS OUT [BASELINE]      the merge job: select, report, compare, publish
#       RESULTS: a folder holding every job's results; BASELINE: the last release's results (optional)
#       writes OUT/report/ (index.html and the tables), OUT/verdict.json and OUT/bundle (+ .tar.gz)
#
# KOPT (default: kopt) is the command, KOPT_ARTIFACTS (default: artifacts) the store. The merge job needs a
# store that holds the variants' models (every job builds all of them; CI copies the CPU job's store) so the
# report can render its A/B clips and the winner can be published.
# Exit codes: those of kopt build (shard) and kopt compare (merge: 3 on a regression, after writing the
# report, the verdict and the bundle, so the artifacts are there to look at).
set -euo pipefail

KOPT=${KOPT:-kopt}
ARTIFACTS=${KOPT_ARTIFACTS:-artifacts}
PY=${PYTHON:-python3}

json_get() {  # json_get FILE EXPR: print a value of a JSON file (EXPR over `d`)
  "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

cmd=${1:-}
shift || true
case "$cmd" in
  shard)
    [ $# -ge 2 ] || { echo "usage: kopt-ci.sh shard RECIPE OUT [kopt build options]" >&2; exit 1; }
    recipe=$1 out=$2
    shift 2
    mkdir -p "$out/results"
    rc=0
    $KOPT --artifacts "$ARTIFACTS" --json build "$recipe" "$@" > "$out/build.json" || rc=$?
    [ -s "$out/build.json" ] || exit "$rc"
    cp "$(json_get "$out/build.json" 'd["results"]')" "$out/results/"
    json_get "$out/build.json" '"\n".join(d["reasons"])'
    exit "$rc"
    ;;
  merge)
    [ $# -ge 3 ] || { echo "usage: kopt-ci.sh merge RECIPE RESULTS OUT [BASELINE]" >&2; exit 1; }
    recipe=$1 results=$2 out=$3 baseline=${4:-}
    mkdir -p "$out"
    # the recipe's own selection settings and publish target, as the one-machine build uses them
    settings="$out/select.json"
    "$PY" - "$recipe" "$settings" <<'PYEOF'
import json, sys
from kopt.pipeline.recipe import load_build_recipe
r = load_build_recipe(sys.argv[1])
json.dump({"select": r.select.model_dump(mode="json"), "compare": r.compare.settings.model_dump(mode="json"),
           "provider": r.publish.provider, "name": r.name}, open(sys.argv[2], "w"))
PYEOF
    provider=$(json_get "$settings" 'd["provider"]')
    $KOPT --artifacts "$ARTIFACTS" report "$results" --out "$out/report" --settings "$settings" \
      --listen-provider "$provider" --title "kopt build: $(json_get "$settings" 'd["name"]') (merged)"
    rc=0
    if [ -n "$baseline" ]; then
      $KOPT compare "$baseline" "$results" --settings "$settings" --out "$out/verdict.json" || rc=$?
      [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || exit "$rc"
    fi
    key=$(json_get "$out/report/selection.json" \
      'next((g["winner_key"] or "") for g in d["groups"] if g["provider"] == "'"$provider"'")')
    if [ -z "$key" ]; then
      echo "kopt-ci: no variant meets the constraints on $provider: nothing to publish" >&2
      exit 4   # as `kopt build`: no winner (kopt/core/exits.py)
    fi
    $KOPT --artifacts "$ARTIFACTS" publish "$key" --out "$out/bundle" --provider "$provider" --results "$results"
    exit "$rc"
    ;;
  *)
    echo "usage: kopt-ci.sh shard RECIPE OUT [kopt build options] | merge RECIPE RESULTS OUT [BASELINE]" >&2
    exit 1
    ;;
esac
