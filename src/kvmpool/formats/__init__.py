"""Native image-header probing: format, virtual size, backing file, features.

Pure Python, no dependency, no host commands: one ``open`` and one or two ``pread`` calls
of the header region per file (a VHDX takes three), so a pool refresh can probe 10,000
volumes quickly (30-40 µs a file, VHDX about 250 µs; ``qemu-img info`` costs about 12 ms).

API::

    probe(path, *, format=None) -> ImageInfo        # raises OSError only if open() fails
    probe_fd(fd, path, size, *, format=None) -> ImageInfo
    backing_chain(path, *, max_depth=64, format=None) -> tuple[ChainLink, ...]
    qemu_format(name) -> str | None                 # our name -> qemu's driver name

``format=`` reads the header as that format only. Use it for volumes whose format kvmpool
recorded: never re-probe those (a guest that writes a qcow2 header into its raw disk must not
make the host open a file it names). ``backing_chain`` applies the same rule to backing files:
a link whose format the overlay does not record is reported, not probed.

``format`` and ``capacity`` equal ``qemu-img info --output=json`` on the same file, and
``corrupt`` is set exactly when qemu-img refuses the header (checked on qemu's samples and on
thousands of mutated images), with these deliberate differences:

==========================  =====================  =========================================
ours                        qemu-img info          why
==========================  =====================  =========================================
iso                         raw (same capacity)    libvirt's name; hand qemu ``raw``
cow                         raw (file size)        qemu dropped UML cow; libvirt probes it
vpc, subformat fixed        raw, unless ``-f vpc``  qemu's probe looks for a footer at 0 only
dmg (``koly`` trailer)      dmg only if ``.dmg``    we read the trailer, not the file name
luks, subformat luks2       raw                    qemu 7.2 opens only LUKS1; corrupt here
qcow2 marked corrupt        opens read-only        ``corrupt`` says so
qcow2 data file unnamed     opens for info         a VM could not start; ``corrupt`` says so
vmdk extent without desc.   refuses                subformat ``extent``; belongs to a descriptor
==========================  =====================  =========================================

Not checked (they would need whole tables read): qcow2 snapshot-table entries, VHD and VHDX
block-allocation entries that point past the end of the file, cloop offset tables.

Multi-file images: a vmdk descriptor lists its extents and a qcow2 its external data file in
``extra_files``; the pool layer must not list those as volumes of their own (a flat extent
probes as raw by itself).
"""

from kvmpool.formats.chain import backing_chain
from kvmpool.formats.info import (
    BackingRef,
    ChainLink,
    ImageInfo,
    LinkState,
    qemu_format,
)
from kvmpool.formats.probe import KNOWN_FORMATS, probe, probe_fd

__all__ = [
    "KNOWN_FORMATS",
    "BackingRef",
    "ChainLink",
    "ImageInfo",
    "LinkState",
    "backing_chain",
    "probe",
    "probe_fd",
    "qemu_format",
]
