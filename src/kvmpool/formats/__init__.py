"""Native image-header probing: format, virtual size, backing file, features.

Pure Python, no dependency, no host commands: one ``open`` and one or two ``pread`` calls
of the header region per file, so a pool refresh can probe 10,000 volumes quickly.
``capacity`` and ``format`` equal ``qemu-img info --output=json`` on the same file, with
these documented differences in naming (libvirt's names win, see ``ImageInfo``):

==========  =====================  ==================================================
ours        qemu-img info          why
==========  =====================  ==================================================
iso         raw (same size)        libvirt calls it iso; hand qemu ``raw``
cow         raw (file size)        qemu dropped the UML cow driver; libvirt probes it
vpc fixed   raw (probe) / vpc -f   qemu only looks for a footer at offset 0
dmg         dmg only if ``.dmg``   we read the ``koly`` trailer instead of the name
luks2       raw                    qemu 7.2 opens only LUKS1; reported corrupt here
==========  =====================  ==================================================

``qemu_format`` maps our name to the driver name to give qemu.
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
