# Sourced inside the test VM (by guest.sh, or by hand in `tests/vm/run --shell`):
# the environment VM tests run in. Needs WORK (the directory shared with the host),
# reads $WORK/env (REPO, PYTHON, DISKS, written by tests/vm/run).
# The guest inherits nothing from the host's environment: everything is set here.
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
cat > "$LVM_SYSTEM_DIR/lvm.conf" <<'LVMCONF'
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
LVMCONF
modprobe -a dm_mod dm_snapshot dm_thin_pool loop || echo "guest: modprobe failed" >&2
