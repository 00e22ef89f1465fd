"""Generated hosts: sysfs trees (with ``/proc`` and recorded tool answers) written into a
directory, for the bundled example host, the benchmarks and the tests.

Stand-ins for what cannot exist on a build machine, named as such: the trees stand in for a
host's ``/sys`` and ``/proc``, ``firmware`` for the NIC firmware tools, ``kernel`` for Linux's
reactions to writes, ``ovs_recorded`` for what only a SmartNIC's datapath shows. Nothing
here touches the real ``/sys``.

Modules: ``builder`` (the tree writer, ``SysfsTree``), ``scenarios`` (named hosts, incl. the
example compute node), ``broken`` (broken trees), ``large`` (benchmark hosts), ``bundle``
(the shipped ``example-host.tar.gz``), ``firmware`` and ``kernel`` (the emulators),
``ovs_recorded`` (recorded tc/ethtool/dpctl answers of an offloading NIC).
The names most callers need are importable from the package itself.
"""

from cyborg_smartnic.hostgen.broken import (
    BYSTANDER_PF,
    PATHOLOGIES,
    PATHOLOGY_PF,
    build_pathology,
    pathology_base,
)
from cyborg_smartnic.hostgen.builder import (
    ICE_DDP_NAMES,
    INIT_PID_NAMESPACE,
    SWITCHDEV_DRIVERS,
    FunctionIds,
    NetdevOptions,
    PfHandle,
    PfOptions,
    SysfsTree,
    scratch_dir,
    vpd,
)
from cyborg_smartnic.hostgen.bundle import (
    EXAMPLE_HOSTNAME,
    example_conf,
    example_files,
    tar_tree,
    write_example,
)
from cyborg_smartnic.hostgen.large import large
from cyborg_smartnic.hostgen.scenarios import (
    EXAMPLE_CMDLINE,
    SCENARIOS,
    bcm57414,
    bluefield2,
    bluefield2_dpu,
    build_scenario,
    cx6dx_switchdev,
    e810_comms,
    example,
    noise,
    x710_legacy,
)

__all__ = [
    "BYSTANDER_PF", "EXAMPLE_CMDLINE", "EXAMPLE_HOSTNAME", "ICE_DDP_NAMES", "INIT_PID_NAMESPACE",
    "PATHOLOGIES", "PATHOLOGY_PF", "SCENARIOS", "SWITCHDEV_DRIVERS",
    "FunctionIds", "NetdevOptions", "PfHandle", "PfOptions", "SysfsTree", "bcm57414",
    "bluefield2", "bluefield2_dpu", "build_pathology", "build_scenario", "cx6dx_switchdev",
    "e810_comms", "example", "example_conf", "example_files", "large", "noise", "pathology_base",
    "scratch_dir", "tar_tree", "vpd", "write_example", "x710_legacy",
]
