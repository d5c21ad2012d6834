#!/bin/sh
# cli_test.sh PROGRAM NAME VERSION: --help exits 0 with a Usage line naming the program,
# --version exits 0 printing "NAME VERSION", an unknown option exits non-zero.
set -u
prog=$1 name=$2 version=$3
out=$("$prog" --help) || { echo "--help exited $?"; exit 1; }
echo "$out" | grep -q "^Usage: $name" || { echo "--help lacks 'Usage: $name':"; echo "$out"; exit 1; }
out=$("$prog" --version) || { echo "--version exited $?"; exit 1; }
[ "$out" = "$name $version" ] || { echo "--version printed '$out', expected '$name $version'"; exit 1; }
if "$prog" --no-such-option >/dev/null 2>&1; then echo "unknown option accepted"; exit 1; fi
echo "ok: $name --help, --version, bad option"
