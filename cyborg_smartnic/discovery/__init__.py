"""Read-only discovery of a host's SmartNICs from sysfs into the immutable model.

- ``model``: the frozen ``Host`` -> ``PhysicalFunction`` -> ``VirtualFunction`` model.
- ``scan``: ``scan(root, ScanOptions) -> Host`` and ``scan_options_from_conf(conf)``.
- ``sysfs``: the reader bound to one root (tolerant reads, hook/recording) and strict parsers.
- ``selection`` / ``physnets``: pure parsing of ``[smartnic] devices`` and
  ``physical_device_mappings``.
- ``devlink``: eswitch mode and firmware from devlink/mstconfig, live or recorded.
- ``pciids``: names of uncatalogued models from pci.ids.
- ``export``: the model as the ``discover -f json`` contract.
- ``example``: the bundled example host.
"""
