"""Host-apply benchmark: a big host re-shaped PF by PF through the kernel emulator.

Builds ``cyborg_smartnic/hostgen/large.py:large(pfs=16, vfs=64, noise=200)`` in ``scratch_dir()``
(tmpfs), writes a host.yaml that touches every PF (64 -> 32 VFs, VFs 0-15 on vfio-pci and
16-31 on the vendor's default driver), plans it from a real scan and applies it with the
executor wired the way ``cyborg-smartnic host apply`` wires it (``HostReader.read`` for the
host, ``HostReader.read_pf``/``read_hugepages`` for per-step re-reads, ``inuse.detect`` for
the guard), every write going through the privileged entry points into
``cyborg_smartnic/hostgen/kernel.py``. Prints the number of steps, total seconds and
milliseconds per step, and the share spent in the executor's re-reads (count, total, ms each; the
rest is mostly the emulator creating and removing VF directories); exits 1 if the apply fails or
leaves anything to do. ``--full-scan`` re-reads the whole host at every step (no PF-scoped
reads), for comparison.

    .venv/bin/python bench/host/run.py [--pfs 16] [--vfs 64] [--noise 200] [--full-scan]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with warnings.catch_warnings():  # oslo.privsep imports eventlet, which warns on import
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from cyborg_smartnic.host.apply import ApplyOptions, Executor

from cyborg_smartnic.cli.common import load_config
from cyborg_smartnic.host import inuse
from cyborg_smartnic.host.config import load_host_config
from cyborg_smartnic.host.plan import plan as make_plan
from cyborg_smartnic.host.reader import HostReader
from cyborg_smartnic.hostgen import large, scratch_dir
from cyborg_smartnic.hostgen.kernel import emulated_kernel

T = TypeVar("T")


class Timed:
    """Counts calls of the wrapped readers and the wall time spent in them."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0

    def wrap(self, read: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: object) -> T:
            start = time.perf_counter()
            try:
                return read(*args)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - start
        return timed


def host_yaml(pfs: int, vfs: int) -> str:
    keep = max(vfs // 2, 2)
    lines = ["devices:"]
    for i in range(pfs):
        lines += [f'  - address: "0000:{0x10 + 2 * i:02x}:00.0"',
                  f"    vf_count: {keep}",
                  "    vf_drivers:",
                  f'      "0-{keep // 2 - 1}": vfio-pci',
                  f'      "{keep // 2}-{keep - 1}": default']
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pfs", type=int, default=16)
    parser.add_argument("--vfs", type=int, default=64)
    parser.add_argument("--noise", type=int, default=200)
    parser.add_argument("--full-scan", action="store_true",
                        help="re-read the whole host at every step (the old behaviour)")
    args = parser.parse_args(argv)

    with scratch_dir("bench-host-") as scratch:
        tree = large(scratch / "host", pfs=args.pfs, vfs=args.vfs, noise=args.noise)
        config_path = scratch / "host.yaml"
        config_path.write_text(host_yaml(args.pfs, args.vfs))
        config = load_host_config(config_path)
        reader = HostReader(load_config(argparse.Namespace(sysfs_root=str(tree.root),
                                                       config_file=[])), config)
        root = reader.root
        with emulated_kernel(tree) as kernel:
            wall0 = time.perf_counter()
            host = reader.read()
            plan = make_plan(config, host, inuse.detect(root, host))
            plan_s = time.perf_counter() - wall0
            reads = Timed()
            executor = Executor(root, reads.wrap(reader.read), lambda h: inuse.detect(root, h),
                                ApplyOptions(), sleep=kernel.sleep, clock=kernel.clock,
                                scan_pf=None if args.full_scan else reads.wrap(reader.read_pf),
                                scan_hugepages=None if args.full_scan else reads.wrap(
                                    reader.read_hugepages))
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = executor.apply(plan)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            host = reader.read()
            left = make_plan(config, host, inuse.detect(root, host)).actions
    steps = len(plan.actions)
    print(f"host: {args.pfs} PFs x {args.vfs} VFs + {args.noise} other functions; "
          f"re-reads: {'full scan' if args.full_scan else 'one PF (HostReader.read_pf)'}")
    print(f"plan: {plan_s:.2f} s; apply: {steps} steps, {wall:.2f} s wall "
          f"({cpu:.2f} s CPU), {1000 * wall / max(steps, 1):.1f} ms/step")
    print(f"re-reads: {reads.calls}, {reads.seconds:.2f} s, "
          f"{1000 * reads.seconds / max(reads.calls, 1):.2f} ms each, "
          f"{1000 * reads.seconds / max(steps, 1):.1f} ms/step")
    if not result.ok or left:
        print(f"FAILED: {result.error or f'{len(left)} step(s) left after apply'}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
