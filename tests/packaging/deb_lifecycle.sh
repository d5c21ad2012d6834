#!/usr/bin/env bash
# deb_lifecycle.sh: the hashflop .debs on this machine (TAP): files where the units expect them,
# users, directory owners, conffiles, generated coordinator keys; then install -> local state,
# keys and a modified conffile -> upgrade (a second build, bumped version) -> remove ->
# reinstall -> purge, checking at each step what must survive and what must go; and lintian.
# Invariants: runs only as root on a machine with no hashflop package, user data or directory
# (else SKIP: it never touches a real node); the trap purges the packages and removes the users,
# groups and directories this run created, on success and on failure, so the machine is left as
# it was found.
# The .debs: $HASHFLOP_DEB_DIR (two versions of each package there: the lower is installed
# first; with one, the bumped one is built with packaging/build-deb --out $HASHFLOP_DEB_DIR
# --version), or, unset, both built by packaging/build-deb into $HF_BUILD_ROOT/deb.
set -uo pipefail

SRC=${HF_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${HF_BUILD_ROOT:-$SRC/build}
PKGS=(hashflop-node hashflop-coord hashflop-tools)
ETC=/etc/hashflop
DIRS=(/etc/hashflop /var/lib/hashflop /var/cache/hashflop /var/lib/hashflop-coord)
ACCOUNTS=(hashflop hashflop-coord)
GROUPS_=(hashflop hashflop-coord video render)
LOG=/dev/null

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
  n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
  shift
  local l
  for l in "$@"; do printf '#   %s\n' "$l"; done
}
# check DESC CMD...: ok when CMD succeeds; else not ok with CMD's output.
check() {
  local desc=$1 out cmd
  shift
  cmd="$*"
  [ ${#cmd} -le 160 ] || cmd="${cmd:0:160}..."
  if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "$ $cmd" "${out//$'\n'/$'\n'#   }"; fi
}
skip_all() { echo "1..0 # SKIP $1"; exit 0; }
bail() { echo "Bail out! $1"; sed 's/^/#   /' "$LOG" | tail -n 30; exit 1; }

[ "$(id -u)" -eq 0 ] || skip_all "needs root (installs packages with dpkg)"
command -v dpkg >/dev/null && command -v dpkg-deb >/dev/null || skip_all "no dpkg on this machine"
for p in "${PKGS[@]}"; do
  if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
    skip_all "$p is installed here (dpkg status $(dpkg-query -W -f='${db:Status-Status}' "$p")): not touching a real installation"
  fi
done
for d in "${DIRS[@]}"; do
  [ -e "$d" ] && skip_all "$d exists: not touching a real node's configuration or state"
done

# What exists before this run, so that the cleanup removes only what the run created.
new_users=() new_groups=()
for u in "${ACCOUNTS[@]}"; do getent passwd "$u" >/dev/null || new_users+=("$u"); done
for g in "${GROUPS_[@]}"; do getent group "$g" >/dev/null || new_groups+=("$g"); done

LOG=$(mktemp /tmp/deb_lifecycle.XXXXXX.log)
cleanup() {
  local p u g d
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$' &&
      dpkg --purge "$p" >>"$LOG" 2>&1
  done
  for d in "${DIRS[@]}"; do rm -rf "$d"; done
  for u in "${new_users[@]}"; do getent passwd "$u" >/dev/null && userdel "$u" >>"$LOG" 2>&1; done
  for g in "${new_groups[@]}"; do getent group "$g" >/dev/null && groupdel "$g" >>"$LOG" 2>&1; done
  rm -f "$LOG"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the .debs: two versions of each package ----
debdir=${HASHFLOP_DEB_DIR:-$BUILD/deb}
versions() { # the versions of hashflop-node in $debdir, ascending
  local f
  for f in "$debdir"/hashflop-node_*_*.deb; do
    [ -f "$f" ] && dpkg-deb -f "$f" Version
  done | sort -u | sort -V
}
if [ -z "${HASHFLOP_DEB_DIR:-}" ] && [ -z "$(versions)" ]; then
  echo "# building the packages: packaging/build-deb --out $debdir"
  "$SRC/packaging/build-deb" --out "$debdir" >>"$LOG" 2>&1 || bail "packaging/build-deb failed"
fi
mapfile -t vs < <(versions)
[ ${#vs[@]} -ge 1 ] || bail "no hashflop-node_*.deb in $debdir"
V1=${vs[0]}
if [ ${#vs[@]} -ge 2 ]; then
  V2=${vs[-1]}
else
  rev=${V1##*-}
  case "$rev" in
    *[!0-9]*|'') V2="${V1}+1" ;;
    *) V2="${V1%-*}-$((rev + 1))" ;;
  esac
  echo "# building the upgrade: packaging/build-deb --out $debdir --version $V2"
  "$SRC/packaging/build-deb" --out "$debdir" --version "$V2" >>"$LOG" 2>&1 ||
    bail "packaging/build-deb --version $V2 failed"
fi
dpkg --compare-versions "$V2" gt "$V1" || bail "upgrade version $V2 is not above $V1"
debs() { local p; for p in "${PKGS[@]}"; do ls "$debdir/${p}_${1}_"*.deb; done; }
mapfile -t DEBS1 < <(debs "$V1")
mapfile -t DEBS2 < <(debs "$V2")
[ ${#DEBS1[@]} -eq 3 ] && [ ${#DEBS2[@]} -eq 3 ] || bail "expected 3 .debs per version in $debdir"
echo "# $V1 -> $V2 from $debdir"

install_debs() { DEBIAN_FRONTEND=noninteractive dpkg --force-confold -i "$@" </dev/null >>"$LOG" 2>&1; }
status_of() { dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$1" 2>/dev/null; }
mode_owner() { stat -c '%a %U:%G' "$1" 2>/dev/null; }
# expect_mode PATH "MODE USER:GROUP"
expect_mode() {
  local got
  got=$(mode_owner "$1")
  if [ "$got" = "$2" ]; then ok "$1 is $2"; else not_ok "$1 is $2" "got: ${got:-missing}"; fi
}
unit_path() { # the installed unit file, in /lib or /usr/lib
  local d
  for d in /lib/systemd/system /usr/lib/systemd/system; do
    [ -f "$d/$1" ] && { echo "$d/$1"; return 0; }
  done
  return 1
}
# exec_start_runs UNIT PROGRAM: the unit's ExecStart program is PROGRAM and runs --version.
exec_start_runs() {
  local f bin out
  f=$(unit_path "$1") || { echo "$1: no unit file"; return 1; }
  bin=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$f" | head -n1)
  [ "$bin" = "$2" ] || { echo "$f: ExecStart runs '$bin', expected $2"; return 1; }
  [ -x "$bin" ] || { echo "$bin: not installed or not executable"; return 1; }
  out=$("$bin" --version) || { echo "$bin --version failed: $out"; return 1; }
  [ "$out" = "$(basename "$bin") ${V1%-*}" ] || { echo "$bin --version: '$out'"; return 1; }
}
is_conffile() { dpkg-query -W -f='${Conffiles}\n' "$1" | awk '{print $1}' | grep -qx "$2"; }
in_group() { id -nG "$1" | tr ' ' '\n' | grep -qx "$2"; }
home_of() { getent passwd "$1" | cut -d: -f6; }
# A digest of the files that must survive an upgrade, a remove and a reinstall.
KEEP=(/var/lib/hashflop/state.json /var/cache/hashflop/pocl/kernel.so /etc/hashflop/coord-token
      /var/lib/hashflop-coord/coord.db /etc/hashflop/coordinator.pem
      /etc/hashflop/coordinator.pub.pem /etc/hashflop/coord-admin.token /etc/hashflop/trust.json
      /etc/hashflop/node.json /etc/hashflop/coord.json /etc/hashflop/profit.json)
digest() { (cd / && sha256sum "${KEEP[@]}" 2>&1; stat -c '%n %a %U:%G' "${KEEP[@]}" 2>&1); }
same_digest() {
  local now
  now=$(digest)
  [ "$now" = "$1" ] || { diff <(echo "$1") <(echo "$now"); return 1; }
}

# ---- install V1 ----
if install_debs "${DEBS1[@]}"; then ok "dpkg -i $V1 (${PKGS[*]})"; else bail "dpkg -i $V1 failed"; fi
for p in "${PKGS[@]}"; do
  check "$p $V1 installed" test "$(status_of "$p")" = "ii $V1"
done
check "hashflopd.service ExecStart binary installed, runs --version" \
  exec_start_runs hashflopd.service /usr/bin/hashflopd
check "hashflop-coord.service ExecStart binary installed, runs --version" \
  exec_start_runs hashflop-coord.service /usr/bin/hashflop-coord
for b in hashflopctl hashflop-pool hashflop-bench; do
  check "/usr/bin/$b runs --version" test "$(/usr/bin/$b --version 2>&1)" = "$b ${V1%-*}"
done
check "sysusers files installed" test -f /usr/lib/sysusers.d/hashflop.conf -a \
  -f /usr/lib/sysusers.d/hashflop-coord.conf
check "units enabled (multi-user.target.wants)" test \
  -L /etc/systemd/system/multi-user.target.wants/hashflopd.service -a \
  -L /etc/systemd/system/multi-user.target.wants/hashflop-coord.service
check "man pages installed" test -f /usr/share/man/man8/hashflopd.8.gz -a \
  -f /usr/share/man/man8/hashflop-coord.8.gz -a -f /usr/share/man/man1/hashflopctl.1.gz -a \
  -f /usr/share/man/man1/hashflop-pool.1.gz -a -f /usr/share/man/man1/hashflop-bench.1.gz
check "node.json is a conffile of hashflop-node" is_conffile hashflop-node $ETC/node.json
check "coord.json is a conffile of hashflop-coord" is_conffile hashflop-coord $ETC/coord.json
check "profit.json is a conffile of hashflop-coord" is_conffile hashflop-coord $ETC/profit.json
check "user hashflop, home /var/lib/hashflop" test "$(home_of hashflop)" = /var/lib/hashflop
check "user hashflop-coord, home /var/lib/hashflop-coord" \
  test "$(home_of hashflop-coord)" = /var/lib/hashflop-coord
check "hashflop is in video" in_group hashflop video
check "hashflop is in render" in_group hashflop render
check "hashflop-coord is in neither video nor render" \
  sh -c '! id -nG hashflop-coord | tr " " "\n" | grep -qx -e video -e render'
expect_mode /etc/hashflop "755 root:root"
expect_mode /var/lib/hashflop "700 hashflop:hashflop"
expect_mode /var/cache/hashflop "700 hashflop:hashflop"
expect_mode /var/lib/hashflop-coord "700 hashflop-coord:hashflop-coord"
expect_mode /etc/hashflop/coordinator.pem "640 root:hashflop-coord"
expect_mode /etc/hashflop/coordinator.pub.pem "644 root:root"
expect_mode /etc/hashflop/coord-admin.token "640 root:hashflop-coord"
expect_mode /etc/hashflop/trust.json "644 root:root"
check "coord-admin.token is 64 hex digits" grep -qxE '[0-9a-f]{64}' $ETC/coord-admin.token
check "trust.json holds the generated coordinator key" \
  grep -q "$(hashflopctl keyid $ETC/coordinator.pem 2>/dev/null | tr -d '\n')" $ETC/trust.json
check "node generates no secret (no coord-token)" test ! -e $ETC/coord-token
check "hashflopd --check-config accepts the packaged node.json" \
  hashflopd --config $ETC/node.json --check-config
check "hashflop-coord --check-config accepts the packaged coord.json" \
  hashflop-coord --config $ETC/coord.json --check-config
# The daemons read what they need as their own users (the units' User=).
check "user hashflop reads node.json and trust.json" \
  runuser -u hashflop -- cat $ETC/node.json $ETC/trust.json
check "user hashflop-coord reads its signing key and admin token" \
  runuser -u hashflop-coord -- cat $ETC/coordinator.pem $ETC/coord-admin.token
check "user hashflop cannot read the coordinator's key" \
  sh -c "! runuser -u hashflop -- cat $ETC/coordinator.pem"

# ---- local state, keys, a modified conffile ----
setup_local() {
  set -e
  echo '{"fake": "state written by deb_lifecycle.sh"}' > /var/lib/hashflop/state.json
  chown hashflop:hashflop /var/lib/hashflop/state.json
  mkdir -p /var/cache/hashflop/pocl
  head -c 4096 /dev/urandom > /var/cache/hashflop/pocl/kernel.so
  chown -R hashflop:hashflop /var/cache/hashflop/pocl
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > $ETC/coord-token
  chown root:hashflop $ETC/coord-token
  chmod 0640 $ETC/coord-token
  head -c 8192 /dev/urandom > /var/lib/hashflop-coord/coord.db
  chown hashflop-coord:hashflop-coord /var/lib/hashflop-coord/coord.db
  sed -i 's/"node_id": "[^"]*"/"node_id": "lifecycle-node"/' $ETC/node.json
  grep -q lifecycle-node $ETC/node.json
}
check "write state, cache, a node token, a database and a modified node.json" setup_local
check "user hashflop reads its token" runuser -u hashflop -- cat $ETC/coord-token
before=$(digest)

# ---- upgrade to V2 ----
if install_debs "${DEBS2[@]}"; then ok "upgrade to $V2"; else not_ok "upgrade to $V2" "$(tail -n 20 "$LOG")"; fi
for p in "${PKGS[@]}"; do check "$p $V2 installed" test "$(status_of "$p")" = "ii $V2"; done
check "upgrade: state, cache, keys, tokens and conffiles intact (bytes, modes, owners)" \
  same_digest "$before"
check "upgrade: the locally modified node.json kept" grep -q lifecycle-node $ETC/node.json
expect_mode /var/lib/hashflop "700 hashflop:hashflop"

# ---- remove ----
if dpkg -r "${PKGS[@]}" >>"$LOG" 2>&1; then ok "dpkg -r"; else not_ok "dpkg -r" "$(tail -n 20 "$LOG")"; fi
for p in hashflop-node hashflop-coord; do
  check "$p: config-files state after remove" test "$(status_of "$p")" = "rc $V2"
done
check "remove: state, cache, keys, tokens and conffiles intact" same_digest "$before"
check "remove: binaries gone" test ! -e /usr/bin/hashflopd -a ! -e /usr/bin/hashflop-coord

# ---- reinstall V2 ----
if install_debs "${DEBS2[@]}"; then ok "reinstall $V2"; else not_ok "reinstall $V2" "$(tail -n 20 "$LOG")"; fi
check "reinstall: state, cache, keys, tokens and conffiles intact (no key regenerated)" \
  same_digest "$before"
check "reinstall: the locally modified node.json kept" grep -q lifecycle-node $ETC/node.json

# ---- purge ----
if dpkg -P "${PKGS[@]}" >>"$LOG" 2>&1; then ok "dpkg -P"; else not_ok "dpkg -P" "$(tail -n 20 "$LOG")"; fi
for p in "${PKGS[@]}"; do check "$p not installed after purge" test -z "$(status_of "$p" | grep -v '^un')"; done
for d in /var/lib/hashflop /var/cache/hashflop /var/lib/hashflop-coord; do
  check "purge: $d gone" test ! -e "$d"
done
for f in coord-token coordinator.pem coordinator.pub.pem coord-admin.token trust.json node.json \
  coord.json profit.json; do
  check "purge: $ETC/$f gone" test ! -e "$ETC/$f"
done
check "purge: $ETC gone (it was empty)" test ! -e $ETC
check "purge: unit enablement links gone" test \
  ! -e /etc/systemd/system/multi-user.target.wants/hashflopd.service -a \
  ! -e /etc/systemd/system/multi-user.target.wants/hashflop-coord.service
check "purge keeps the system users (Debian policy: no uid reuse)" \
  getent passwd hashflop hashflop-coord

# ---- purge keeps an operator's trust file ----
operator_trust() {
  set -e
  install_debs "$(ls "$debdir"/hashflop-tools_"$V2"_*.deb)" "$(ls "$debdir"/hashflop-coord_"$V2"_*.deb)"
  tmp=$(mktemp -d)
  hashflopctl keygen --out "$tmp/op.pem" >/dev/null
  hashflopctl trust-add --trust $ETC/trust.json --role operator --pub "$tmp/op.pub.pem" \
    --name lifecycle-operator >/dev/null
  rm -rf "$tmp"
  dpkg -P hashflop-coord hashflop-tools >>"$LOG" 2>&1
  grep -q lifecycle-operator $ETC/trust.json
  test ! -e $ETC/coordinator.pem
  test "$(ls -A $ETC)" = trust.json
}
check "purge keeps a trust.json the operator changed (and only it)" operator_trust

# ---- lintian ----
if command -v lintian >/dev/null; then
  if out=$(lintian --fail-on error,warning "${DEBS2[@]}" 2>&1); then
    ok "lintian: no errors or warnings (overrides in packaging/debian/*.lintian-overrides)"
  else
    not_ok "lintian: no errors or warnings" "${out//$'\n'/$'\n'#   }"
  fi
else
  n=$((n + 1)); echo "ok $n - lintian # SKIP lintian is not installed (apt-get install lintian)"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
