#!/bin/sh
# Runs inside the test VM as root (started by tests/vm/run through vng --exec), once per boot:
# sets up the environment, runs pytest -m vm once, leaves its exit code in $WORK/rc.
#
#   sh tests/vm/guest.sh WORK
#
# WORK is the directory shared with the host (vng --rwdir). The host wrote there:
#   env    REPO=..., PYTHON=... (the venv's python), DISKS="kvmpool-0 ..." (disk serials)
#   args   pytest arguments, one per line
# This script writes there: started, pytest.log, junit.xml, rc.
# The guest inherits nothing from the host's environment: everything is set here.
set -u
WORK=$1
. "$WORK/env"

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C LANG=C HOME=/tmp/kvmpool-vm-home
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
export KVMPOOL_VM=1 KVMPOOL_VM_DISKS="$DISKS"
# Every LVM command otherwise warns about the file descriptors of virtio-serial ports.
export LVM_SUPPRESS_FD_WARNINGS=1
# /etc/lvm is empty in the guest. No udev synchronisation: if udevd dies, lvcreate would
# wait forever for it. No dmeventd monitoring, no lvmpolld, no devices file.
export LVM_SYSTEM_DIR=/run/kvmpool-vm/lvm
mkdir -p "$LVM_SYSTEM_DIR" "$HOME"
cat > "$LVM_SYSTEM_DIR/lvm.conf" <<'EOF'
activation {
    udev_sync = 0
    udev_rules = 0
    monitoring = 0
}
devices {
    use_devicesfile = 0
    obtain_device_list_from_udev = 0
}
global {
    use_lvmpolld = 0
}
EOF

date +%s > "$WORK/started"
echo "guest: $(uname -r), $(nproc) vCPUs, disks: $(ls /dev/disk/by-id/ 2>/dev/null | tr '\n' ' ')"
modprobe -a dm_mod dm_snapshot dm_thin_pool loop || echo "guest: modprobe failed" >&2

set --
while IFS= read -r arg; do
    set -- "$@" "$arg"
done < "$WORK/args"

cd "$REPO" || { echo "guest: no $REPO" >&2; echo 3 > "$WORK/rc"; exit 3; }
{
    "$PYTHON" -m pytest -m vm -v -p no:cacheprovider --junitxml="$WORK/junit.xml" "$@"
    echo $? > "$WORK/rc"
} 2>&1 | tee "$WORK/pytest.log"
sync
exit "$(cat "$WORK/rc" 2>/dev/null || echo 3)"
