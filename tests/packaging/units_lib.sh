# units_lib.sh: shared by tests/packaging/units_*.sh (sourced, not run): TAP output and a staged
# root in which systemd-analyze finds our units and the built programs where they are installed.
#
# Invariants: nothing outside the temporary root is written; the root is removed on exit.
# Threading: one shell process.
# shellcheck shell=bash

UNITS_N=0
UNITS_FAILED=0

tap_ok() { UNITS_N=$((UNITS_N + 1)); echo "ok $UNITS_N - $*"; }
tap_not_ok() { UNITS_N=$((UNITS_N + 1)); UNITS_FAILED=1; echo "not ok $UNITS_N - $*"; }
tap_skip() { UNITS_N=$((UNITS_N + 1)); echo "ok $UNITS_N # SKIP $*"; }
tap_diag() { sed 's/^/# /'; }
tap_check() { # tap_check DESCRIPTION COMMAND...: ok when COMMAND succeeds
	local d=$1
	shift
	if "$@"; then tap_ok "$d"; else tap_not_ok "$d"; fi
}
tap_done() { echo "1..$UNITS_N"; exit "$UNITS_FAILED"; }

# units_stage_root UNITDIR HASHFLOPD HASHFLOP_COORD: fills $UNITS_ROOT as the packages install
# into / (programs in /usr/bin, units in /usr/lib/systemd/system, sysusers.d), plus the host's
# own units (sysinit.target and the rest that our units depend on) so that verify resolves them.
units_stage_root() {
	local sysdir
	UNITS_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/hf-units.XXXXXX") || return 1
	trap 'rm -rf "$UNITS_ROOT"' EXIT
	mkdir -p "$UNITS_ROOT/usr/bin" "$UNITS_ROOT/usr/lib/systemd/system" \
		"$UNITS_ROOT/usr/lib/sysusers.d" "$UNITS_ROOT/etc" || return 1
	for sysdir in /usr/lib/systemd/system /lib/systemd/system; do
		if [ -e "$sysdir/sysinit.target" ]; then
			# Errors ignored: dpkg may be replacing a file there right now.
			cp -a "$sysdir/." "$UNITS_ROOT/usr/lib/systemd/system/" 2>/dev/null
			rm -f "$UNITS_ROOT"/usr/lib/systemd/system/*.dpkg-*
			break
		fi
	done
	[ -e "$UNITS_ROOT/usr/lib/systemd/system/sysinit.target" ] || return 1
	cp "$2" "$UNITS_ROOT/usr/bin/hashflopd" && cp "$3" "$UNITS_ROOT/usr/bin/hashflop-coord" &&
		cp "$1/hashflopd.service" "$1/hashflop-coord.service" \
			"$UNITS_ROOT/usr/lib/systemd/system/" &&
		cp "$1/hashflop.sysusers" "$UNITS_ROOT/usr/lib/sysusers.d/hashflop.conf"
}

# unit_values FILE SECTION KEY: every value KEY has in [SECTION] of FILE, one a line (an empty
# assignment prints an empty line, as systemd reads it: a reset).
unit_values() {
	awk -v sec="[$2]" -v key="$3" '
		/^[ \t]*[#;]/ { next }
		/^\[/ { in_sec = ($0 == sec); next }
		in_sec && index($0, key "=") == 1 { print substr($0, length(key) + 2) }
	' "$1"
}

# seconds VALUE: a systemd time span (s, min, ms, or plain seconds) in whole seconds, for checks.
seconds() {
	case $1 in
	*ms) echo $(( ${1%ms} / 1000 )) ;;
	*min) echo $(( ${1%min} * 60 )) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}
