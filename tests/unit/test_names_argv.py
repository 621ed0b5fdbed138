import pytest

from kvmpool.errors import InvalidArgument
from kvmpool.host import qemu_img
from kvmpool.names import check_pool_name, check_volume_name


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "/etc/passwd", "..", ".", "", "a\0b", "x" * 256, "a\nb",
             ".kvmpool-new-1234"],
)
def test_escaping_volume_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_volume_name(name)


@pytest.mark.parametrize("name", ["vm1", "disk.qcow2", "x" * 255, "ünï cødé", "-leading-dash"])
def test_good_volume_names(name: str) -> None:
    check_volume_name(name)


@pytest.mark.parametrize("name", ["bad/name", "", "a\nb", ".."])
def test_bad_pool_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_pool_name(name)


def test_qemu_img_create_argv() -> None:
    assert qemu_img.create_argv("qcow2", "/p/v", 1048576, options=["compat=1.1"]) == [
        "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", "/p/v", "1048576"]


def test_qemu_img_backing_always_has_format() -> None:
    argv = qemu_img.create_argv("qcow2", "/p/o", None, backing="/p/b", backing_format="raw")
    assert argv == ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/p/b", "-F", "raw", "/p/o"]
    with pytest.raises(ValueError):
        qemu_img.create_argv("qcow2", "/p/o", None, backing="/p/b")
    with pytest.raises(ValueError):
        qemu_img.create_argv("qcow2", "/p/o", None)
