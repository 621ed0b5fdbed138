"""REPORT LUNS of one iSCSI target through libiscsi (ctypes), as a child process.

    python -m kvmpool.host.reportluns INITIATOR iscsi://HOST:PORT/TARGET-IQN/0 TIMEOUT

The fallback of ``kvmpool.host.libiscsi.target_luns``: libiscsi's ``iscsi-ls -s`` logs in to
every target of a portal and stops at the first it cannot log in to; this logs in to the one
target asked for. Output in ``iscsi-ls -s``'s format, so one parser reads both::

    Target:iqn.2026-11.test:t1 Portal:127.0.0.1:3260
    Lun:0    Type:STORAGE_ARRAY_CONTROLLER
    Lun:1    Type:DIRECT_ACCESS

CHAP as libiscsi's tools take it: ``LIBISCSI_CHAP_USERNAME`` / ``LIBISCSI_CHAP_PASSWORD`` in
the environment. Run as a separate process (through ``Runner``, with its timeout), so a hang
or a crash inside the C library never takes kvmpool with it. Exit 0, or 10 with libiscsi's
error on stderr (as the libiscsi tools). Needs libiscsi7 (a dependency of libiscsi-bin).
"""

from __future__ import annotations

import ctypes
import os
import sys

ISCSI_SESSION_NORMAL = 2
ISCSI_HEADER_DIGEST_NONE_CRC32C = 1
TYPES = {0: "DIRECT_ACCESS", 1: "SEQUENTIAL_ACCESS", 5: "MMC", 0x0C: "STORAGE_ARRAY_CONTROLLER",
         0x0D: "ENCLOSURE_SERVICES"}


def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL("libiscsi.so.7")
    p, s, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, res, args in (
        ("iscsi_create_context", p, [s]), ("iscsi_destroy_context", i, [p]),
        ("iscsi_set_targetname", i, [p, s]), ("iscsi_set_session_type", i, [p, i]),
        ("iscsi_set_header_digest", i, [p, i]), ("iscsi_set_timeout", i, [p, i]),
        ("iscsi_set_initiator_username_pwd", i, [p, s, s]),
        ("iscsi_full_connect_sync", i, [p, s, i]), ("iscsi_logout_sync", i, [p]),
        ("iscsi_get_error", s, [p]), ("iscsi_reportluns_sync", p, [p, i, i]),
        ("iscsi_inquiry_sync", p, [p, i, i, i, i]), ("scsi_datain_unmarshall", p, [p]),
        ("scsi_free_scsi_task", None, [p]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def _status(task: int) -> int:
    # struct scsi_task starts with ``int status`` (SCSI_STATUS_GOOD = 0)
    return int(ctypes.cast(task, ctypes.POINTER(ctypes.c_int))[0])


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[1].startswith("iscsi://"):
        print("usage: reportluns INITIATOR iscsi://HOST:PORT/IQN/0 TIMEOUT", file=sys.stderr)
        return 2
    initiator, url, timeout = argv[0], argv[1], int(float(argv[2]))
    portal, _, rest = url.removeprefix("iscsi://").partition("/")
    target = rest.rsplit("/", 1)[0] if "/" in rest else rest
    lib = _lib()
    ctx = lib.iscsi_create_context(initiator.encode())
    if not ctx:
        print("cannot create an iSCSI context", file=sys.stderr)
        return 10
    try:
        lib.iscsi_set_targetname(ctx, target.encode())
        lib.iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL)
        lib.iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C)
        lib.iscsi_set_timeout(ctx, timeout)
        user = os.environ.get("LIBISCSI_CHAP_USERNAME")
        if user:
            password = os.environ.get("LIBISCSI_CHAP_PASSWORD", "")
            lib.iscsi_set_initiator_username_pwd(ctx, user.encode(), password.encode())
        if lib.iscsi_full_connect_sync(ctx, portal.encode(), 0) != 0:
            error = (lib.iscsi_get_error(ctx) or b"").decode(errors="replace")
            print(f"Login Failed. {error}", file=sys.stderr)
            return 10
        try:
            return _report(lib, ctx, target, portal)
        finally:
            lib.iscsi_logout_sync(ctx)
    finally:
        lib.iscsi_destroy_context(ctx)


def _report(lib: ctypes.CDLL, ctx: int, target: str, portal: str) -> int:
    task = lib.iscsi_reportluns_sync(ctx, 0, 16384)
    if not task or _status(task) != 0:
        error = (lib.iscsi_get_error(ctx) or b"").decode(errors="replace")
        print(f"REPORT LUNS failed. {error}", file=sys.stderr)
        if task:
            lib.scsi_free_scsi_task(task)
        return 10
    try:
        data = lib.scsi_datain_unmarshall(task)
        if not data:
            print("REPORT LUNS: cannot read the answer", file=sys.stderr)
            return 10
        # struct scsi_reportluns_list { uint32_t num; uint16_t luns[]; }
        count = ctypes.cast(data, ctypes.POINTER(ctypes.c_uint32))[0]
        luns = list(ctypes.cast(data + 4, ctypes.POINTER(ctypes.c_uint16))[:count])
    finally:
        lib.scsi_free_scsi_task(task)
    print(f"Target:{target} Portal:{portal}")
    for lun in luns:
        print(f"Lun:{lun}    Type:{_type(lib, ctx, lun)}")
    return 0


def _type(lib: ctypes.CDLL, ctx: int, lun: int) -> str:
    task = lib.iscsi_inquiry_sync(ctx, lun, 0, 0, 64)
    if not task:
        return "UNKNOWN"
    try:
        if _status(task) != 0:
            return "UNKNOWN"
        data = lib.scsi_datain_unmarshall(task)
        if not data:
            return "UNKNOWN"
        # struct scsi_inquiry_standard { int qualifier; int device_type; ... }
        qualifier, device_type = ctypes.cast(data, ctypes.POINTER(ctypes.c_int))[:2]
        if qualifier != 0:
            return "NOT_CONNECTED"
        return TYPES.get(device_type, f"TYPE_{device_type}")
    finally:
        lib.scsi_free_scsi_task(task)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
