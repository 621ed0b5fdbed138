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

# Faster reads. The root filesystem vng mounts is 9p without a cache: every path lookup is
# a round trip to the host, slow under emulation (importing pytest took ~17 s). tests/vm/run
# exports / a second time (tag kvmpool-root); mounted with cache=loose and bound over the
# directories tests read (FASTDIRS: the repository, the venv, /usr), Python starts ~3x
# faster. Read-only, like the stock root; harmless to skip if it fails.
FAST=/run/kvmpool-vm/root
if [ -n "${FASTDIRS:-}" ] && ! mountpoint -q "$FAST" 2>/dev/null; then
    mkdir -p "$FAST"
    if mount -t 9p -o ro,trans=virtio,version=9p2000.L,cache=loose,msize=524288,access=any \
        kvmpool-root "$FAST" 2>/dev/null; then
        for dir in $FASTDIRS; do
            case "$WORK/" in "$dir"/*) continue ;; esac  # would hide the shared directory
            mount --bind "$FAST$dir" "$dir" || echo "guest: cannot bind $dir" >&2
        done
    else
        echo "guest: no cached view of / (tag kvmpool-root); running on the slow one" >&2
    fi
fi
