"""iscsiadm: argv goldens (libvirt's), node records with CHAP, parsers, error classes."""

from __future__ import annotations

import pytest

from kvmpool.errors import InvalidArgument, KvmpoolError, NotFound, ToolMissing
from kvmpool.host import iscsiadm
from kvmpool.host.iscsiadm import Lu, Session
from kvmpool.host.run import Completed

T = "iqn.2026-11.org.kvmpool.test:plain"
P = "127.0.0.1:3260,1"
VT = "iqn.2026-11.org.kvmpool.test:vm-plain"
VP = "127.0.0.1:49485,1"

# Recorded: ``iscsiadm --op new`` on Debian 12 (open-iscsi 2.1.8), shortened in the middle.
RECORD = """# BEGIN RECORD 2.1.8
node.name = iqn.2026-11.org.kvmpool:record-sample
node.tpgt = -1
node.startup = manual
node.session.nr_sessions = 1
node.session.auth.authmethod = None
node.session.auth.chap_algs = MD5
node.session.timeo.replacement_timeout = 120
node.conn[0].address = 127.0.0.1
node.conn[0].port = 3999
node.conn[0].timeo.auth_timeout = 45
# END RECORD"""

# ``iscsiadm --mode session -P 3``, recorded in the VM tier (tests/vm/test_iscsi_pool.py,
# open-iscsi 2.1.8, Debian kernel 6.1, tgt 1.0.85 on 127.0.0.1): one session, LUN 0 the
# target's controller (no disk), LUNs 1 and 2 disks.
RECORDED = """iSCSI Transport Class version 2.0-870
version 2.1.8
Target: iqn.2026-11.org.kvmpool.test:vm-plain (non-flash)
\tCurrent Portal: 127.0.0.1:49485,1
\tPersistent Portal: 127.0.0.1:49485,1
\t\t**********
\t\tInterface:
\t\t**********
\t\tIface Name: kvmpool-iface-4cb36783
\t\tIface Transport: tcp
\t\tIface Initiatorname: iqn.2026-11.org.kvmpool.test:vm-initiator
\t\tIface IPaddress: 127.0.0.1
\t\tIface HWaddress: default
\t\tIface Netdev: default
\t\tSID: 1
\t\tiSCSI Connection State: LOGGED IN
\t\tiSCSI Session State: LOGGED_IN
\t\tInternal iscsid Session State: NO CHANGE
\t\t*********
\t\tTimeouts:
\t\t*********
\t\tRecovery Timeout: 120
\t\tTarget Reset Timeout: 30
\t\tLUN Reset Timeout: 30
\t\tAbort Timeout: 15
\t\t*****
\t\tCHAP:
\t\t*****
\t\tusername: <empty>
\t\tpassword: ********
\t\tusername_in: <empty>
\t\tpassword_in: ********
\t\t************************
\t\tNegotiated iSCSI params:
\t\t************************
\t\tHeaderDigest: None
\t\tDataDigest: None
\t\tMaxRecvDataSegmentLength: 262144
\t\tMaxXmitDataSegmentLength: 8192
\t\tFirstBurstLength: 65536
\t\tMaxBurstLength: 262144
\t\tImmediateData: Yes
\t\tInitialR2T: Yes
\t\tMaxOutstandingR2T: 1
\t\t************************
\t\tAttached SCSI devices:
\t\t************************
\t\tHost Number: 0\tState: running
\t\tscsi0 Channel 00 Id 0 Lun: 0
\t\tscsi0 Channel 00 Id 0 Lun: 1
\t\t\tAttached scsi disk sda\t\tState: running
\t\tscsi0 Channel 00 Id 0 Lun: 2
\t\t\tAttached scsi disk sdb\t\tState: running
"""
# A second session of the same target through another portal, in the same layout (as
# multipath setups have; not recorded).
DETAIL = RECORDED + """\tCurrent Portal: 127.0.0.2:3260,1
\tPersistent Portal: 127.0.0.2:3260,1
\t\tIface Initiatorname: iqn.2026-11.org.kvmpool.test:vm-initiator
\t\tSID: 2
\t\tiSCSI Session State: FAILED
\t\tHost Number: 3\tState: running
\t\tscsi3 Channel 00 Id 0 Lun: 1
\t\t\tAttached scsi disk sdc\t\tState: running
"""


def test_argv_as_libvirt_builds_it() -> None:
    assert iscsiadm.portal("127.0.0.1", None) == P
    assert iscsiadm.portal("fd00::1", 3261) == "[fd00::1]:3261,1"
    assert iscsiadm.discovery_argv(P) == [
        "iscsiadm", "--mode", "discovery", "--type", "sendtargets", "--portal", P,
        "--op", "nonpersistent"]
    assert iscsiadm.node_new_argv(P, T) == [
        "iscsiadm", "--mode", "node", "--portal", P, "--targetname", T, "--op", "new"]
    assert iscsiadm.login_argv(P, T, "kvmpool-iface-1") == [
        "iscsiadm", "--mode", "node", "--portal", P, "--targetname", T, "--login",
        "--interface", "kvmpool-iface-1"]
    assert iscsiadm.logout_argv(P, T)[-1] == "--logout"
    assert iscsiadm.rescan_argv(3) == ["iscsiadm", "--mode", "session", "-r", "3", "-R"]
    assert iscsiadm.iface_initiator_argv("i", "iqn.x:y")[-4:] == [
        "--name", "iface.initiatorname", "--value", "iqn.x:y"]
    assert iscsiadm.iface_name("iqn.x:y") == iscsiadm.iface_name("iqn.x:y")
    assert iscsiadm.iface_name("iqn.x:y").startswith("kvmpool-iface-")
    argvs = iscsiadm.chap_update_argvs(P, T, "alice", "pw")
    assert [a[-3] for a in argvs] == ["node.session.auth.authmethod",
                                      "node.session.auth.username",
                                      "node.session.auth.password"]


def test_chap_goes_into_the_record_as_iscsiadm_update_would_write_it() -> None:
    out = iscsiadm.record_with_chap(RECORD, "alice", "s3cret pass")
    lines = out.split("\n")
    i = lines.index("node.session.auth.authmethod = CHAP")
    assert lines[i:i + 4] == ["node.session.auth.authmethod = CHAP",
                              "node.session.auth.username = alice",
                              "node.session.auth.password = s3cret pass",
                              "node.session.auth.chap_algs = MD5"]
    assert "node.session.auth.authmethod = None" not in out
    assert iscsiadm.record_with_chap(out, "bob", "other").count("auth.password") == 1
    with pytest.raises(InvalidArgument):
        iscsiadm.record_with_chap(RECORD, "alice", "two\nlines")
    with pytest.raises(InvalidArgument):
        iscsiadm.record_with_chap("node.name = x", "alice", "pw")


def test_record_paths() -> None:
    assert iscsiadm.node_record_paths(T, "127.0.0.1", None, nodes_dirs=["/n"]) == [
        f"/n/{T}/127.0.0.1,3260,1/default", f"/n/{T}/127.0.0.1,3260"]
    with pytest.raises(InvalidArgument):
        iscsiadm.node_record_paths("../../etc", "h", None)


def test_parsers() -> None:
    assert iscsiadm.parse_discovery(f"{P} {T}\n[fd00::1]:3260,1 {T}\n\n") == [
        (P, T), ("[fd00::1]:3260,1", T)]
    sessions = iscsiadm.parse_sessions(f"tcp: [1] {P} {T} (non-flash)\n"
                                       f"tcp: [4] 127.0.0.2:3260,1 {T} (non-flash)\n")
    assert sessions == [Session("tcp", 1, P, T), Session("tcp", 4, "127.0.0.2:3260,1", T)]
    assert iscsiadm.find_session(sessions, T, "127.0.0.2:3260,1") == 4
    assert iscsiadm.find_session(sessions, "iqn.other:x") is None
    assert iscsiadm.parse_session_detail(RECORDED) == iscsiadm.parse_session_detail(DETAIL)[:1]
    one, two = iscsiadm.parse_session_detail(DETAIL)
    assert (one.target, one.portal, one.sid, one.state, one.host) == (VT, VP, 1, "LOGGED_IN", 0)
    assert one.initiator == "iqn.2026-11.org.kvmpool.test:vm-initiator"
    assert one.lus == (Lu(0, 0, 0, 0, None), Lu(0, 0, 0, 1, "sda"), Lu(0, 0, 0, 2, "sdb"))
    assert (two.portal, two.sid, two.state, two.host) == ("127.0.0.2:3260,1", 2, "FAILED", 3)
    assert two.lus == (Lu(3, 0, 0, 1, "sdc"),)
    assert iscsiadm.parse_session_detail("") == []


def _failed(rc: int, stderr: str) -> Completed:
    return Completed(("iscsiadm",), rc, "", stderr)


def test_errors() -> None:
    # recorded on this machine (no iscsi_tcp in the kernel, no iscsid)
    no_driver = ("iscsiadm: can not connect to iSCSI daemon (111)!\n"
                 "iscsiadm: iSCSI driver tcp is not loaded. Load the module then retry the "
                 "command.\niscsiadm: Could not perform SendTargets discovery: iSCSI driver "
                 "not found. Please make sure it is loaded, and retry the operation\n")
    err = iscsiadm.classify(_failed(12, no_driver), "cannot discover")
    assert isinstance(err, ToolMissing) and "iscsi_tcp" in err.message
    err = iscsiadm.classify(_failed(21, "iscsiadm: No records found\n"), "cannot log in")
    assert isinstance(err, NotFound)
    err = iscsiadm.classify(_failed(24, "iscsiadm: Login failed\n"), "cannot log in")
    assert err.message == "cannot log in: CHAP authentication failed"
    err = iscsiadm.classify(_failed(4, "iscsiadm: cannot make connection to 127.0.0.1: "
                                       "Connection refused\n"), "cannot discover")
    assert err.message == "cannot discover: connection refused"
    err = iscsiadm.classify(_failed(99, "iscsiadm: something new\n"), "x")
    assert type(err) is KvmpoolError and err.message == "x: something new"
