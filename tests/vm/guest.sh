#!/bin/sh
# Runs inside the test VM as root (started by tests/vm/run through vng --exec), once per boot:
# sets up the environment (guest-env.sh), runs pytest -m vm once, leaves its exit code in
# $WORK/rc.
#
#   sh tests/vm/guest.sh WORK
#
# WORK is the directory shared with the host (vng --rwdir). The host wrote there:
#   env    REPO=..., PYTHON=... (the venv's python), DISKS="kvmpool-0 ..." (disk serials)
#   args   pytest arguments, one per line
# This script writes there: started, kernel.log, pytest.log, junit.xml, rc.
set -u
WORK=$1
date +%s > "$WORK/started"
# The kernel's console goes nowhere with vng: keep its log (oopses, I/O errors) for the host.
dmesg --follow > "$WORK/kernel.log" 2>&1 &
. "$(dirname "$0")/guest-env.sh"
echo "guest: $(uname -r), $(nproc) vCPUs, up $(cut -d" " -f1 /proc/uptime) s, disks: $(ls /dev/disk/by-id/ 2>/dev/null | tr "\n" " ")"

set --
while IFS= read -r arg; do
    set -- "$@" "$arg"
done < "$WORK/args"

cd "$REPO" || { echo "guest: no $REPO" >&2; echo 3 > "$WORK/rc"; exit 3; }
# pytest gets a session of its own: a test that signals its whole process group (some
# daemons do that when they stop) then kills pytest at worst, never this script, and the
# host still gets an exit code (128 + the signal).
{
    setsid -w "$PYTHON" -m pytest -m vm -v -p no:cacheprovider -p no:hypothesispytest \
        --junitxml="$WORK/junit.xml" "$@"
    echo $? > "$WORK/rc"
} 2>&1 | tee "$WORK/pytest.log"
echo "guest: pytest done, up $(cut -d" " -f1 /proc/uptime) s"
sync
exit "$(cat "$WORK/rc" 2>/dev/null || echo 3)"
