#!/bin/sh
# coord_backtest_cli.sh HASHFLOP_COORD SOURCE_ROOT: hashflop-coord backtest end to end: --help,
# usage errors and refused files exit 2 naming what is wrong; a generated two-day series with
# packaging/examples/fleet.json prints the side-by-side table, and --json one valid object.
set -u
prog=$1 root=$2
fleet=$root/packaging/examples/fleet.json
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hf-backtest-cli-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; [ -f "$tmp/err" ] && sed 's/^/  stderr: /' "$tmp/err"; exit 1; }

# expect_fail CODE TEXT ARGS...: exits CODE with TEXT in stderr, nothing on stdout
expect_fail() {
	code=$1 text=$2
	shift 2
	"$prog" backtest "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ "$rc" -eq "$code" ] || fail "backtest $*: exit $rc, expected $code"
	grep -qF -- "$text" "$tmp/err" || fail "backtest $*: stderr lacks '$text'"
	[ -s "$tmp/out" ] && fail "backtest $*: printed on stdout"
	return 0
}

out=$("$prog" backtest --help) || fail "--help exited $?"
echo "$out" | grep -q "^Usage: hashflop-coord backtest --series FILE.csv --fleet FLEET.json" ||
	fail "--help lacks the usage line"
expect_fail 2 "--series and --fleet are required"
expect_fail 2 "--series and --fleet are required" --fleet "$fleet"
expect_fail 2 "unrecognized option" --no-such-option
expect_fail 2 "unexpected argument" --series a.csv --fleet "$fleet" extra
expect_fail 2 "$tmp/none.csv" --series "$tmp/none.csv" --fleet "$fleet"

"$prog" series-gen --days 2 --seed 5 --out "$tmp/s.csv" 2>"$tmp/err" || fail "series-gen exited $?"
printf 'time,btc_usd,difficulty\n' >"$tmp/bad.csv"
expect_fail 2 "bad.csv" --series "$tmp/bad.csv" --fleet "$fleet"
expect_fail 2 "$tmp/none.json" --series "$tmp/s.csv" --fleet "$tmp/none.json"
cls='"x": {"hashrate_hs": 1e14, "mining_watts": 3000, "inferences_per_s": 0, "inference_watts": 0, "idle_watts": 10, "switch_s": 60}'
printf '{"classes": {%s}, "nodes": [{"match": "gpu-*", "class": "x"}]}\n' "$cls" >"$tmp/glob.json"
expect_fail 2 "glob" --series "$tmp/s.csv" --fleet "$tmp/glob.json"
printf '{"classes": {%s}, "nodes": [{"id": "a", "class": "x"}], "initial_mode": "sleep"}\n' "$cls" \
	>"$tmp/mode.json"
expect_fail 2 "initial_mode" --series "$tmp/s.csv" --fleet "$tmp/mode.json"
printf '{"classes": {%s}, "nodes": [{"id": "a", "class": "x"}]}\n' "$(echo "$cls" | sed 's/1e14/-1/')" \
	>"$tmp/neg.json"
expect_fail 2 "classes.x.hashrate_hs" --series "$tmp/s.csv" --fleet "$tmp/neg.json"
printf '{"nodes": [], "classes": {}}\n' >"$tmp/empty.json"
"$prog" backtest --series "$tmp/s.csv" --fleet "$tmp/empty.json" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] || fail "an empty fleet: exit not 2"

"$prog" backtest --series "$tmp/s.csv" --fleet "$fleet" >"$tmp/out" 2>"$tmp/err" ||
	fail "backtest exited $?"
for want in "576 rows every 300 s" "policy " "static idle" "static mining" "static inference" \
	"hindsight optimum" "captured " "switches per node-hour" "where the policy loses"; do
	grep -qF -- "$want" "$tmp/out" || { cat "$tmp/out"; fail "output lacks '$want'"; }
done
"$prog" backtest --series "$tmp/s.csv" --fleet "$fleet" --json >"$tmp/out.json" 2>"$tmp/err" ||
	fail "backtest --json exited $?"
if [ -x /usr/bin/python3 ]; then
	/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["rows"] == 576 and d["step_s"] == 300, d["rows"]
for k in ("policy", "optimum"):
    assert d[k]["node_hours"] > 0 and "margin_usd" in d[k], k
assert set(d["statics"]) == {"idle", "mining", "inference"}
assert d["policy"]["margin_usd"] <= d["optimum"]["margin_usd"] + 1e-9
assert isinstance(d["bar"]["met"], bool) and isinstance(d["losses"], list)
' "$tmp/out.json" || fail "--json output is not the expected object"
else
	grep -q '"optimum"' "$tmp/out.json" || fail "--json output lacks optimum"
fi
echo "ok: hashflop-coord backtest: help, usage errors, refused files, text and JSON results"
