#!/usr/bin/env bash
# deps.sh check|install PKG...: are these Debian packages installed?
# check: exit 1 with the command that installs the missing ones.
# install: apt-get install the missing ones (as root, or through sudo).
set -euo pipefail
mode=$1; shift
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$mode" = check ]; then
    echo "rlhf: error: missing Debian packages: ${missing[*]}" >&2
    echo "hint: run 'make deps' (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "rlhf: error: need root to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
echo "deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
