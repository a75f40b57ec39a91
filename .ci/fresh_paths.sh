#!/usr/bin/env bash
# The documented install paths, each in a venv of its own (the suite's venv has every extra, so
# it cannot see an import that only an extra satisfies):
#   - the base package alone trains, evaluates and reports a matrix game and the two-step game,
#     and a family whose extra is missing exits 2 with one line naming the extra;
#   - the `pettingzoo` extra alone trains simple_spread.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

make_venv() {  # make_venv DIR EXTRAS: torch from the pin first, then the package
  python3 -m venv "$1"
  "$1/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" torch==2.13.0
  "$1/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$ROOT$2"
}

expect_missing_extra() {  # expect_missing_extra VENV ENV EXTRA: exit 2, one line, naming the extra
  local err="$WORK/err.txt" code=0
  "$1/bin/factorize" train --algo qmix --env "$2" --steps 10 --out "$WORK/never" 2>"$err" >/dev/null || code=$?
  if [[ $code -ne 2 || $(wc -l <"$err") -ne 1 ]] || ! grep -q "factorize\[$3\]" "$err"; then
    echo "FAIL: $2 without its extra gave exit $code and:"; cat "$err"; exit 1
  fi
  echo "ok: $2 without [$3] exits 2: $(cat "$err")"
}

echo "== base install (no extras)"
make_venv "$WORK/base" ""
F="$WORK/base/bin/factorize"
cd "$WORK"
for env in matrix:qtran two_step; do
  run="results/base/${env/:/-}/qmix/default/s0"
  "$F" train --algo qmix --env "$env" --steps 1500 --seed 0 --out "$run"
  "$F" eval "$run" --episodes 4
  "$F" qtable "$run" >/dev/null
done
"$F" report results/base --out report/base
test -s report/base/report.md
for pair in mpe:simple_spread_v3=pettingzoo lbf:Foraging-8x8-2p-2f-coop-v3=lbf rware:rware-tiny-2ag-v2=rware smax:3m=smax; do
  expect_missing_extra "$WORK/base" "${pair%=*}" "${pair#*=}"
done

echo "== the suite on the base install: tests of a missing extra skip, the rest pass"
"$WORK/base/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$ROOT[test]"
(cd "$ROOT" && "$WORK/base/bin/python" -m pytest -q -n 2 --benchmark-disable -m "not slow" -p no:cacheprovider tests)

echo "== the pettingzoo extra alone"
make_venv "$WORK/pz" "[pettingzoo]"
"$WORK/pz/bin/factorize" train --algo qmix --env mpe:simple_spread_v3 --steps 2000 --seed 0 --out "$WORK/spread" \
  preset=epymarl runner.test_episodes=4
expect_missing_extra "$WORK/pz" lbf:Foraging-8x8-2p-2f-coop-v3 lbf
echo "fresh paths: ok"
