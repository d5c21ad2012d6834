#!/bin/bash
# examples_check.sh SOURCE_ROOT HASHFLOPD HASHFLOP_COORD: every JSON file shipped under
# packaging/ (examples, the packages' conffiles, the image's sample config) is validated by the
# program that reads it; a JSON file the table below does not know is a failure, so a new
# example cannot ship unchecked. TAP on stdout.
#   node    hashflopd --check-config --config F            (the effective config must be JSON)
#   coord   hashflop-coord --check-config --config F
#   profit  hashflop-coord --check-config on a coord.json naming F as its profit_file, and
#           hashflop-coord backtest --fleet F over the demo series
#   fleet   hashflop-coord backtest --fleet F over the demo series
set -u
root=$1 hashflopd=$2 coord=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0

kind_of() {
  case "$1" in
    */coord.json) echo coord ;;
    */profit.json) echo profit ;;
    */fleet.json) echo fleet ;;
    */node.json|*/node-*.json|*/node.*.json) echo node ;;
    *) echo unknown ;;
  esac
}

report() { # report OK|FAIL DESCRIPTION LOG
  n=$((n + 1))
  if [ "$1" = OK ]; then
    echo "ok $n - $2"
  else
    failed=$((failed + 1))
    echo "not ok $n - $2"
    sed 's/^/#   /' "$3" | head -20
  fi
}

check() { # check KIND FILE
  local kind=$1 f=$2 rel=${2#"$root"/} log="$tmp/log" status=OK
  case "$kind" in
    node)
      if "$hashflopd" --check-config --config "$f" >"$tmp/out" 2>"$log"; then
        python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/out" 2>>"$log" || status=FAIL
      else status=FAIL; fi ;;
    coord)
      "$coord" --check-config --config "$f" >/dev/null 2>"$log" || status=FAIL ;;
    profit)
      printf '{"fleet_id":"lab","database":"%s/coord.db","profit_file":"%s"}\n' "$tmp" "$f" \
        >"$tmp/coord.json"
      if ! "$coord" --check-config --config "$tmp/coord.json" >/dev/null 2>"$log"; then
        status=FAIL
      elif ! "$coord" backtest --series "$root/packaging/series/demo.csv" --fleet "$f" \
          >/dev/null 2>"$log"; then status=FAIL; fi ;;
    fleet)
      "$coord" backtest --series "$root/packaging/series/demo.csv" --fleet "$f" \
        >/dev/null 2>"$log" || status=FAIL ;;
    *)
      echo "no checker for this file: name it node.json, coord.json, profit.json or fleet.json," \
        "or add it to tests/packaging/examples_check.sh" >"$log"
      status=FAIL ;;
  esac
  report "$status" "$rel ($kind)" "$log"
}

while IFS= read -r -d '' f; do
  check "$(kind_of "$f")" "$f"
done < <(find "$root/packaging" -name '*.json' -type f -print0 | sort -z)

# The table must have found the examples at all (a moved directory would pass vacuously).
[ -f "$root/packaging/examples/node.json" ] && [ "$n" -ge 4 ]
report "$([ $? -eq 0 ] && echo OK || echo FAIL)" "found the shipped examples ($n files)" /dev/null
echo "1..$n"
[ "$failed" -eq 0 ]
