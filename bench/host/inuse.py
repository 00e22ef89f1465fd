"""In-use detection benchmark: ``inuse.detect`` on a big generated host with busy /proc.

Builds ``cyborg_smartnic/hostgen/large.py:large(pfs, vfs, noise)`` in ``scratch_dir()``
(tmpfs), adds ``--processes`` processes with ``--fds`` open files each (sockets and pipes;
every tenth process also holds the vfio group of a VF on vfio-pci, a VM), scans the host once and
prints the best of ``--rounds`` calls of ``detect(root, host)`` in milliseconds with the number of
VFs and users found. ``--inuse FILE`` loads another version of ``cyborg_smartnic/host/
inuse.py`` instead (e.g. ``git show REV:cyborg_smartnic/host/inuse.py > /tmp/old.py``), to
compare revisions on the same tree.

    .venv/bin/python bench/host/inuse.py [--pfs 16] [--vfs 128] [--noise 2000]
        [--processes 400] [--fds 40] [--rounds 5] [--inuse FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import oldrev
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.host import inuse
from cyborg_smartnic.hostgen import SysfsTree, large, scratch_dir


def _load(path: str | None) -> ModuleType:
    if path is None:
        return inuse
    return oldrev.load_file("bench_inuse", Path(path))


def _busy_proc(tree: SysfsTree, host: Host, processes: int, fds: int) -> None:
    vfio_vfs = [str(vf.address) for pf in host.physical_functions
                for vf in pf.virtual_functions if vf.driver == "vfio-pci"]
    for n in range(processes):
        files = [f"socket:[{100000 + n * fds + i}]" if i % 2 else f"pipe:[{n * fds + i}]"
                 for i in range(fds)]
        if n % 10 == 0 and vfio_vfs:
            files.append(f"/dev/vfio/{tree.iommu_group_of(vfio_vfs[n % len(vfio_vfs)])}")
        tree.add_process(1000 + n, f"proc{n}", files, threads=2)
    tree.set_kernel_threads(2 * processes + 1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pfs", type=int, default=16)
    parser.add_argument("--vfs", type=int, default=128)
    parser.add_argument("--noise", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=400)
    parser.add_argument("--fds", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inuse", metavar="FILE", help="another inuse.py to time instead")
    args = parser.parse_args(argv)
    module = _load(args.inuse)
    with scratch_dir("bench-inuse-") as root:
        tree = large(root, pfs=args.pfs, vfs=args.vfs, noise=args.noise)
        host = scan(root)
        _busy_proc(tree, host, args.processes, args.fds)
        timings = []
        found = None
        for _ in range(args.rounds):
            start = time.perf_counter()
            found = module.detect(str(root), host)
            timings.append(time.perf_counter() - start)
        vfs = sum(len(pf.virtual_functions) for pf in host.physical_functions)
        users = len(found.users) if found is not None else 0
        print(f"detect: {min(timings) * 1000:.1f} ms (best of {args.rounds}); {vfs} VFs, "
              f"{args.processes} processes x {args.fds} fds; {users} users, "
              f"blind={getattr(found, 'blind', None)!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
