"""kvmpool: storage pools and volumes for KVM hosts, libvirt-compatible."""

__version__ = "0.1.0"
