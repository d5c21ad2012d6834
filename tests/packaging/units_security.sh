#!/bin/bash
# units_security.sh: `systemd-analyze security --offline=yes` on packaging/systemd's units: the
# exposure stays under a threshold, and every item still exposed is one the unit's comments
# explain (a new exposed item fails until it is explained here and in the unit).
#
# Usage: units_security.sh UNITDIR HASHFLOPD HASHFLOP_COORD (meson passes them). TAP.
# Scores recorded with systemd 252 (Debian 12): hashflopd 1.4, hashflop-coord 1.1 (the previous
# hashflopd.service: 6.7). Thresholds: the recorded score + 0.2 (--threshold is 10 x the score).
# Threading: one shell process.
set -u
# shellcheck source=tests/packaging/units_lib.sh
. "$(dirname "$0")/units_lib.sh"

UNITDIR=$1 HASHFLOPD=$2 COORD=$3

if ! command -v systemd-analyze >/dev/null; then
	echo "1..0 # SKIP systemd-analyze is not installed (Debian: systemd)"
	exit 0
fi
if ! systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
	echo "1..0 # SKIP this systemd-analyze has no security --offline (systemd 250 or later)"
	exit 0
fi
if ! units_stage_root "$UNITDIR" "$HASHFLOPD" "$COORD"; then
	echo "Bail out! cannot stage a root in ${TMPDIR:-/tmp}"
	exit 1
fi
systemd-analyze --version | head -1 | tap_diag

# The exposed items each unit keeps, with the reason given in the unit file.
NODE_KEPT='SystemCallFilter=~@resources RootDirectory=/RootImage= SupplementaryGroups=
PrivateDevices= RestrictAddressFamilies=~AF_UNIX RestrictAddressFamilies=~AF_(INET|INET6)
ProcSubset= PrivateNetwork= DeviceAllow= IPAddressDeny='
COORD_KEPT='RootDirectory=/RootImage= RestrictAddressFamilies=~AF_UNIX
RestrictAddressFamilies=~AF_(INET|INET6) PrivateNetwork= DeviceAllow= IPAddressDeny='

assess() { # assess UNIT THRESHOLDx10 KEPT
	local unit=$1 limit=$2 kept=$3 out score item bad=""
	out=$(cd "$UNITS_ROOT" && systemd-analyze security --offline=yes --root="$UNITS_ROOT" \
		--no-pager "$unit" 2>&1)
	score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
	if [ -z "$score" ]; then
		echo "$out" | tap_diag
		tap_not_ok "$unit: systemd-analyze security gives an exposure score"
		return
	fi
	tap_ok "$unit: systemd-analyze security gives an exposure score ($score)"
	if (cd "$UNITS_ROOT" && systemd-analyze security --offline=yes --root="$UNITS_ROOT" \
		--threshold="$limit" "$unit" >/dev/null 2>&1); then
		tap_ok "$unit: exposure $score is at most $((limit / 10)).$((limit % 10))"
	else
		tap_not_ok "$unit: exposure $score is at most $((limit / 10)).$((limit % 10))"
	fi
	grep '✗' <<<"$out" | tap_diag
	while read -r item; do
		grep -qxF -- "$item" <(tr ' ' '\n' <<<"$kept") || bad="$bad $item"
	done < <(grep '✗' <<<"$out" | awk '{ print $2 }')
	if [ -z "$bad" ]; then
		tap_ok "$unit: every exposed item is one the unit explains"
	else
		tap_not_ok "$unit: exposed items the unit does not explain:$bad"
	fi
}

assess hashflopd.service 16 "$NODE_KEPT"
assess hashflop-coord.service 13 "$COORD_KEPT"

# The check is real: the threshold fails a unit with its hardening taken away.
mkdir -p "$UNITS_ROOT/etc/systemd/system/hashflop-coord.service.d"
printf '[Service]\nPrivateUsers=no\nPrivateDevices=no\nProtectSystem=no\nSystemCallFilter=\n' \
	>"$UNITS_ROOT/etc/systemd/system/hashflop-coord.service.d/weaker.conf"
if (cd "$UNITS_ROOT" && systemd-analyze security --offline=yes --root="$UNITS_ROOT" \
	--threshold=13 hashflop-coord.service >/dev/null 2>&1); then
	tap_not_ok "control: a drop-in that removes hardening goes over the threshold"
else
	tap_ok "control: a drop-in that removes hardening goes over the threshold"
fi
rm -r "$UNITS_ROOT/etc/systemd/system/hashflop-coord.service.d"

tap_done
