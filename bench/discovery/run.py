"""Discovery benchmark: full scan of a large host vs the I/O floor and Cyborg's in-tree driver.

    .venv/bin/python bench/discovery/run.py [--runs 7] [--pfs 16] [--vfs 128] [--noise 2000]

Builds two generated hosts on tmpfs (sysfs is in memory too; page cache warm after the first
run): ``mixed`` (ConnectX-6 Dx switchdev / E810 / X710 PFs) and ``x710`` (X710 only, the
family Cyborg's in-tree Intel NIC driver knows), each with PFS x VFS VFs (half on vfio-pci)
and NOISE unrelated functions.
Medians of wall and CPU time (interleaved rounds; ratios on CPU time, steadier on a shared
machine) of:

- ``scan``: ``cyborg_smartnic.discovery.scan.scan`` (devlink answers read from recorded files);
- ``floor``: a bare loop doing exactly the reads, readlinks and listdirs the scan did (recorded
  by ``RecordingReader``), no parsing, no model: the cost of the I/O alone;
- ``cyborg nic_tree``: ``cyborg.accelerator.drivers.nic.intel.sysinfo.nic_tree()`` pointed at
  the tree as its unit tests do (module-level sysfs path patched), including its building of
  Cyborg driver objects; ``cyborg sysfs part`` is the same with object building stubbed out.
Then counts file operations per run for both (audit hooks) to show how much each one reads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.discovery.sysfs import RecordingReader
from cyborg_smartnic.hostgen import large, scratch_dir

OPTIONS = ScanOptions(hostname="bench")
X710_ONLY = (("8086", "1572", "i40e", "iavf", "legacy"),)


def medians_ms(funcs: dict[str, Callable[[], object]],
               runs: int) -> dict[str, tuple[float, float]]:
    """(median wall ms, median CPU ms) of each function. Rounds interleave the contenders so
    a load spike hits all alike; CPU time (user + system of this process, which includes the
    syscalls) is the steadier figure on a shared machine, so ratios use it."""
    for func in funcs.values():
        func()  # warm the page cache, imports and lazy tables
    wall: dict[str, list[float]] = {name: [] for name in funcs}
    cpu: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(runs):
        for name, func in funcs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            func()
            cpu[name].append((time.process_time() - start_cpu) * 1000)
            wall[name].append((time.perf_counter() - start) * 1000)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]))
            for name in funcs}


def replay(ops: list[tuple[str, str]]) -> Callable[[], None]:
    """The floor: the same syscalls, nothing else."""
    def run() -> None:
        for op, path in ops:
            try:
                if op == "read":
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.read(fd, 65536)
                    finally:
                        os.close(fd)
                elif op == "readlink":
                    os.readlink(path)
                else:
                    os.listdir(path)
            except OSError:
                pass
    return run


def cyborg_nic_tree(root: Path, build_objects: bool) -> Callable[[], object]:
    from cyborg.accelerator.common import utils
    from cyborg.accelerator.drivers.nic.intel import sysinfo

    sysinfo.PCI_DEVICES_PATH_PATTERN = f"{root}/sys/bus/pci/devices/*"
    utils._get_sysfs_netdev_path = (  # same function, rooted in the tree
        lambda addr, vf_interface=False:
        f"{root}/sys/bus/pci/devices/{addr}/{'physfn/' if vf_interface else ''}net")
    original = sysinfo._generate_driver_device
    if not build_objects:
        def run() -> object:
            sysinfo._generate_driver_device = lambda nic: nic
            try:
                return sysinfo.nic_tree()
            finally:
                sysinfo._generate_driver_device = original
        return run
    return sysinfo.nic_tree


def count_ops(func: Callable[[], object]) -> int:
    """Opens, listdirs and globs one call makes (same audit events for both contenders)."""
    counter = [0, False]

    def hook(event: str, _args: object) -> None:
        if counter[1] and event in ("open", "os.listdir", "os.scandir", "glob.glob"):
            counter[0] += 1  # type: ignore[operator]
    sys.addaudithook(hook)
    counter[1] = True
    func()
    counter[1] = False
    return counter[0]  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--pfs", type=int, default=16)
    parser.add_argument("--vfs", type=int, default=128)
    parser.add_argument("--noise", type=int, default=2000)
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float, str]] = []
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with scratch_dir("bench-discovery-") as tmp:
        t0 = time.perf_counter()
        large(tmp / "mixed", pfs=args.pfs, vfs=args.vfs, noise=args.noise)
        large(tmp / "x710", pfs=args.pfs, vfs=args.vfs, noise=args.noise, models=X710_ONLY)
        print(f"generated 2 hosts ({args.pfs} PFs x {args.vfs} VFs + {args.noise} other "
              f"functions each) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        funcs: dict[str, Callable[[], object]] = {}
        ops: dict[str, int] = {}
        for name in ("mixed", "x710"):
            root = tmp / name
            reader = RecordingReader(root)
            host = scan(root, OPTIONS, reader=reader)
            vfs = sum(len(pf.virtual_functions) for pf in host.physical_functions)
            assert (len(host.physical_functions), vfs) == (args.pfs, args.pfs * args.vfs)
            funcs[f"{name} scan"] = lambda root=root: scan(root, OPTIONS)
            funcs[f"{name} floor"] = replay(reader.ops)
            ops[name] = len(reader.ops)
        root = tmp / "x710"
        nics = cyborg_nic_tree(root, True)()
        assert sum(len(n.deployable_list) for n in nics) == args.pfs * args.vfs  # type: ignore[attr-defined]
        funcs["cyborg full"] = cyborg_nic_tree(root, True)
        funcs["cyborg sysfs"] = cyborg_nic_tree(root, False)
        ms = medians_ms(funcs, args.runs)
        for name in ("mixed", "x710"):
            scan_ms, floor_ms = ms[f"{name} scan"], ms[f"{name} floor"]
            rows.append((name, "scan", *scan_ms, f"{scan_ms[1] / floor_ms[1]:.2f}x floor (CPU), "
                                                 f"{scan_ms[0] / floor_ms[0]:.2f}x (wall)"))
            rows.append((name, "floor (same syscalls)", *floor_ms, f"{ops[name]} ops"))
        x710 = ms["x710 scan"]
        for key, label in (("cyborg full", "cyborg nic_tree"),
                           ("cyborg sysfs", "cyborg sysfs part")):
            rows.append(("x710", label, *ms[key],
                         f"scan {ms[key][1] / x710[1]:.1f}x faster (CPU), "
                         f"{ms[key][0] / x710[0]:.1f}x (wall)"))
        ours = count_ops(lambda: scan(root, OPTIONS))
        theirs = count_ops(cyborg_nic_tree(root, False))
    print(f"{'host':<6} {'what':<22} {'wall ms':>8} {'CPU ms':>8}  note")
    for host_name, what, wall_ms, cpu_ms, note in rows:
        print(f"{host_name:<6} {what:<22} {wall_ms:>8.1f} {cpu_ms:>8.1f}  {note}")
    print(f"x710 opens+listdirs+globs per run (audit events; readlink is not audited): "
          f"scan {ours}, cyborg {theirs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
