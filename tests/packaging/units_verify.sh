#!/bin/bash
# units_verify.sh: packaging/systemd checked as installed: `systemd-analyze verify` on the units
# against the built programs, the sysusers file applied to an empty root, and the directives the
# issue 16 contract fixes (notify, watchdog, start limit, users, directories, no reload).
#
# Usage: units_verify.sh UNITDIR HASHFLOPD HASHFLOP_COORD EXAMPLESDIR (meson passes them). TAP.
# The units are verified unchanged: a temporary root holds the programs at /usr/bin, the units
# at /usr/lib/systemd/system and the host's units, and verify runs with --root on it.
# --man=no: the man pages come from the Debian packages (not built here).
# Threading: one shell process.
set -u
# shellcheck source=tests/packaging/units_lib.sh
. "$(dirname "$0")/units_lib.sh"

UNITDIR=$1 HASHFLOPD=$2 COORD=$3 EXAMPLES=$4
NODE_UNIT=$UNITDIR/hashflopd.service
COORD_UNIT=$UNITDIR/hashflop-coord.service

if ! command -v systemd-analyze >/dev/null; then
	echo "1..0 # SKIP systemd-analyze is not installed (Debian: systemd)"
	exit 0
fi
if ! units_stage_root "$UNITDIR" "$HASHFLOPD" "$COORD"; then
	echo "Bail out! cannot stage a root in ${TMPDIR:-/tmp}"
	exit 1
fi
systemd-analyze --version | head -1 | tap_diag

# ---- systemd-analyze verify ----
verify() { # verify UNIT...: prints what verify says about our units; fails on its failure
	systemd-analyze verify --man=no --root="$UNITS_ROOT" "$@" >"$UNITS_ROOT/verify.out" 2>&1
	local rc=$?
	grep -i hashflop "$UNITS_ROOT/verify.out" | tap_diag
	[ $rc -eq 0 ] && ! grep -qi hashflop "$UNITS_ROOT/verify.out"
}
for u in hashflopd.service hashflop-coord.service; do
	tap_check "systemd-analyze verify $u: passes with no message about it" verify "$u"
done
# The check is real: verify refuses a unit whose program is missing, and reports an unknown key.
mv "$UNITS_ROOT/usr/bin/hashflopd" "$UNITS_ROOT/usr/bin/hashflopd.away"
tap_check "control: verify fails when /usr/bin/hashflopd is missing" \
	bash -c '! systemd-analyze verify --man=no --root="$1" hashflopd.service >/dev/null 2>&1' \
	_ "$UNITS_ROOT"
mv "$UNITS_ROOT/usr/bin/hashflopd.away" "$UNITS_ROOT/usr/bin/hashflopd"
mkdir -p "$UNITS_ROOT/etc/systemd/system/hashflop-coord.service.d"
printf '[Service]\nNoSuchDirective=1\n' \
	>"$UNITS_ROOT/etc/systemd/system/hashflop-coord.service.d/control.conf"
tap_check "control: verify reports an unknown directive in a drop-in" \
	bash -c 'systemd-analyze verify --man=no --root="$1" hashflop-coord.service 2>&1 |
		grep -q "Unknown key .NoSuchDirective"' _ "$UNITS_ROOT"
rm -r "$UNITS_ROOT/etc/systemd/system/hashflop-coord.service.d"

# ---- sysusers ----
sysusers_applies() {
	local out
	if ! out=$(systemd-sysusers --root="$UNITS_ROOT" 2>&1); then
		echo "$out" | tap_diag
		return 1
	fi
	echo "$out" | tap_diag
}
passwd_has() { grep -qxF "$1" <(cut -d: -f1,6,7 "$UNITS_ROOT/etc/passwd"); }
group_has() { # group_has GROUP USER
	awk -F: -v g="$1" -v u="$2" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++)
		if (m[i] == u) found = 1 } END { exit !found }' "$UNITS_ROOT/etc/group"
}
if command -v systemd-sysusers >/dev/null; then
	tap_check "systemd-sysusers --dry-run parses hashflop.conf" \
		bash -c 'systemd-sysusers --dry-run --root="$1" 2>&1 | grep -q "Creating user .hashflop-coord"' \
		_ "$UNITS_ROOT"
	tap_check "systemd-sysusers applies hashflop.conf to an empty root" sysusers_applies
	tap_check "user hashflop: home /var/lib/hashflop, no login shell" \
		passwd_has "hashflop:/var/lib/hashflop:/usr/sbin/nologin"
	tap_check "user hashflop-coord: home /var/lib/hashflop-coord, no login shell" \
		passwd_has "hashflop-coord:/var/lib/hashflop-coord:/usr/sbin/nologin"
	tap_check "hashflop is a member of video" group_has video hashflop
	tap_check "hashflop is a member of render" group_has render hashflop
	tap_check "hashflop-coord is in neither video nor render" \
		bash -c '! grep -E "^(video|render):" "$1" | grep -q "hashflop-coord"' _ "$UNITS_ROOT/etc/group"
else
	tap_skip "systemd-sysusers is not installed (Debian: systemd)"
fi

# ---- the contract's directives ----
is() { # is FILE SECTION KEY VALUE: the last assignment of KEY in SECTION is VALUE
	local v
	v=$(unit_values "$1" "$2" "$3" | tail -1)
	[ "$v" = "$4" ] || { echo "$(basename "$1") [$2] $3=$v, expected $4" | tap_diag; return 1; }
}
has() { # has FILE SECTION KEY WORD: some assignment of KEY in SECTION lists WORD
	unit_values "$1" "$2" "$3" | tr ' ' '\n' | grep -qxF "$4" ||
		{ echo "$(basename "$1") [$2] $3 lacks $4" | tap_diag; return 1; }
}
absent() { [ -z "$(unit_values "$1" "$2" "$3")" ]; }
above() { # above FILE SECTION KEY SECONDS: KEY's time span exceeds SECONDS
	local v
	v=$(unit_values "$1" "$2" "$3" | tail -1)
	[ -n "$v" ] && [ "$(seconds "$v")" -gt "$4" ] ||
		{ echo "$(basename "$1") [$2] $3=$v, expected above ${4}s" | tap_diag; return 1; }
}
start_limit() {
	[ -n "$(unit_values "$1" Unit StartLimitIntervalSec)" ] &&
		[ -n "$(unit_values "$1" Unit StartLimitBurst)" ]
}
syscall_filter() {
	local v
	v=$(unit_values "$1" Service SystemCallFilter)
	[ "$(sed -n 1p <<<"$v")" = "@system-service" ] && grep -q '^~.*@privileged' <<<"$v"
}
gpu_groups() { has "$1" Service SupplementaryGroups video && has "$1" Service SupplementaryGroups render; }
listed() { unit_values "$1" Service "$2" | grep -qxF "$3"; } # listed FILE KEY LINE
json_get() { /usr/bin/python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[k]
print(d)' "$1" "$2"; }

for f in "$NODE_UNIT" "$COORD_UNIT"; do
	n=$(basename "$f")
	tap_check "$n: Type=notify" is "$f" Service Type notify
	tap_check "$n: NotifyAccess=main" is "$f" Service NotifyAccess main
	tap_check "$n: WatchdogSec=30s" is "$f" Service WatchdogSec 30s
	tap_check "$n: Restart=on-failure" is "$f" Service Restart on-failure
	tap_check "$n: a start limit in [Unit]" start_limit "$f"
	tap_check "$n: no ExecReload= (SIGHUP does not reload)" absent "$f" Service ExecReload
	tap_check "$n: an empty capability bounding set" is "$f" Service CapabilityBoundingSet ""
	tap_check "$n: no ambient capabilities" is "$f" Service AmbientCapabilities ""
	for kv in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
		MemoryDenyWriteExecute=yes SystemCallArchitectures=native SystemCallErrorNumber=EPERM \
		ConfigurationDirectory=hashflop; do
		tap_check "$n: $kv" is "$f" Service "${kv%%=*}" "${kv#*=}"
	done
	tap_check "$n: SystemCallFilter starts from @system-service, without @privileged" \
		syscall_filter "$f"
	tap_check "$n: RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" \
		is "$f" Service RestrictAddressFamilies "AF_UNIX AF_INET AF_INET6"
done

tap_check "hashflopd.service: ExecStart as the contract fixes it" \
	is "$NODE_UNIT" Service ExecStart "/usr/bin/hashflopd --config /etc/hashflop/node.json"
tap_check "hashflopd --help documents --config" bash -c '"$1" --help | grep -q -- "--config FILE"' \
	_ "$HASHFLOPD"
tap_check "hashflopd.service: User=hashflop" is "$NODE_UNIT" Service User hashflop
tap_check "hashflopd.service: SupplementaryGroups video render" gpu_groups "$NODE_UNIT"
for kv in StateDirectory=hashflop StateDirectoryMode=0700 CacheDirectory=hashflop \
	CacheDirectoryMode=0700 DevicePolicy=closed KillMode=mixed PrivateUsers=yes; do
	tap_check "hashflopd.service: $kv" is "$NODE_UNIT" Service "${kv%%=*}" "${kv#*=}"
done
tap_check "hashflopd.service: TimeoutStartSec above modes.ready_timeout_ms (120 s)" \
	above "$NODE_UNIT" Service TimeoutStartSec 120
drain=$(( $(json_get "$EXAMPLES/node.json" modes.drain_timeout_ms) / 1000 ))
tap_check "hashflopd.service: TimeoutStopSec above the example's drain_timeout_ms (${drain} s)" \
	above "$NODE_UNIT" Service TimeoutStopSec "$drain"
tap_check "hashflopd.service: CUDA_CACHE_PATH inside the cache directory" \
	listed "$NODE_UNIT" Environment "CUDA_CACHE_PATH=/var/cache/hashflop/cuda"
for dev in 'char-nvidia* rw' 'char-drm rw'; do
	tap_check "hashflopd.service: DeviceAllow=$dev" listed "$NODE_UNIT" DeviceAllow "$dev"
done
tap_check "hashflopd.service: no SocketBindAllow= (api.port and inference.port are settings)" \
	absent "$NODE_UNIT" Service SocketBindAllow

tap_check "hashflop-coord.service: ExecStart as the contract fixes it" \
	is "$COORD_UNIT" Service ExecStart "/usr/bin/hashflop-coord --config /etc/hashflop/coord.json"
tap_check "hashflop-coord --help documents --config" \
	bash -c '"$1" --help | grep -q -- "--config FILE"' _ "$COORD"
tap_check "hashflop-coord.service: User=hashflop-coord" is "$COORD_UNIT" Service User hashflop-coord
for kv in StateDirectory=hashflop-coord StateDirectoryMode=0700 PrivateDevices=yes \
	PrivateUsers=yes ProcSubset=pid; do
	tap_check "hashflop-coord.service: $kv" is "$COORD_UNIT" Service "${kv%%=*}" "${kv#*=}"
done
tap_check "hashflop-coord.service: no device access" absent "$COORD_UNIT" Service DeviceAllow
tap_check "hashflop-coord.service: RestartForceExitStatus=SIGHUP (SIGHUP ends the program)" \
	is "$COORD_UNIT" Service RestartForceExitStatus SIGHUP
# The shipped coord.json (packaging/debian, once merged) and the example: the port the unit lets
# the coordinator bind is the one it is configured to listen on.
for cfg in "$EXAMPLES/coord.json" "$UNITDIR/../debian/coord.json"; do
	[ -e "$cfg" ] || continue
	port=$(json_get "$cfg" listen.port)
	tap_check "hashflop-coord.service: SocketBindAllow=tcp:$port ($cfg's listen.port)" \
		is "$COORD_UNIT" Service SocketBindAllow "tcp:$port"
done
db=$(json_get "$EXAMPLES/coord.json" database)
tap_check "coord.json's database ($db) lies in the StateDirectory" \
	bash -c '[ "${1%/*}" = /var/lib/hashflop-coord ]' _ "$db"

tap_done
