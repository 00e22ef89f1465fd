"""The fleet bench's recorded table and plot, from the results ``bench/fleet/run.py`` wrote.

Steady state is the mean over the unchanged cycles after the first one (the cycle right after
a first report re-checks every pool it sent, a one-off); "stub" is the median cycle of those
(what most cycles cost when a driver sends a full report only every 10th cycle). Rates are per
60 s report interval (cyborg-agent's default ``periodic_interval``).

    .venv/bin/python bench/fleet/plot.py [--results bench/fleet/results.json]
        [--png bench/fleet/fleet.png]   (the PNG needs matplotlib: pip install -e .[bench])
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

INTERVAL_S = 60.0
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Point:
    """One driver at one fleet size, reduced to what the table and plot show."""

    n: int
    driver: str
    hosts: str
    first_s: float
    requests_per_host: float  # steady mean per cycle
    stub_requests_per_host: float
    cpu_ms_per_host: float  # conductor, steady mean per cycle
    stub_cpu_ms_per_host: float
    placement_cpu_ms_per_host: float  # steady mean per cycle
    mariadb_cpu_ms_per_host: float
    first_conductor_cpu_s: float
    # one host changes: what its cycle and the next cost beyond a stub cycle (the median)
    changed_requests: float
    changed_cpu_s: float
    after_change_requests: float
    after_change_cpu_s: float
    placement_mb: float
    cyborg_mb: float

    @property
    def requests_per_s(self) -> float:
        return self.requests_per_host * self.n / INTERVAL_S

    @property
    def conductor_cores(self) -> float:
        return self.cpu_ms_per_host * self.n / 1000 / INTERVAL_S


def reduce(raw: dict[str, Any]) -> Point:
    steady = raw["unchanged"][1:] or raw["unchanged"]
    n = int(raw["n"])

    def per_host(key: str, cycles: Sequence[dict[str, Any]], scale: float = 1.0) -> float:
        return float(statistics.mean(c[key] for c in cycles)) * scale / n

    def median_per_host(key: str, scale: float = 1.0) -> float:
        return float(statistics.median(c[key] for c in steady)) * scale / n

    return Point(
        n=n, driver=raw["driver"], hosts=raw["hosts"], first_s=raw["first"]["wall_s"],
        requests_per_host=per_host("requests", steady),
        stub_requests_per_host=median_per_host("requests"),
        cpu_ms_per_host=per_host("conductor_cpu_s", steady, 1000),
        stub_cpu_ms_per_host=median_per_host("conductor_cpu_s", 1000),
        placement_cpu_ms_per_host=per_host("placement_cpu_s", steady, 1000),
        mariadb_cpu_ms_per_host=per_host("mariadb_cpu_s", steady, 1000),
        first_conductor_cpu_s=raw["first"]["conductor_cpu_s"],
        changed_requests=raw["changed"]["requests"] - median_per_host("requests") * n,
        changed_cpu_s=raw["changed"]["conductor_cpu_s"] - median_per_host("conductor_cpu_s") * n,
        after_change_requests=raw["after"]["requests"] - median_per_host("requests") * n,
        after_change_cpu_s=raw["after"]["conductor_cpu_s"]
        - median_per_host("conductor_cpu_s") * n,
        placement_mb=raw["database"]["placement"]["bytes"] / 2**20,
        cyborg_mb=raw["database"]["cyborg"]["bytes"] / 2**20)


def table(points: Sequence[Point]) -> str:
    lines = [
        "| N | driver | first reports s | requests/host/cycle (stub) | requests/s | "
        "conductor CPU ms/host/cycle (stub) | conductor cores | one host changes, beyond a "
        "stub cycle: requests, conductor CPU s (the cycle after) | DB MB placement / cyborg |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|"]
    for p in points:
        lines.append(
            f"| {p.n} | {p.driver} | {p.first_s:.1f} | {p.requests_per_host:.2f} "
            f"({p.stub_requests_per_host:.2f}) | {p.requests_per_s:.2f} | "
            f"{p.cpu_ms_per_host:.1f} ({p.stub_cpu_ms_per_host:.1f}) | "
            f"{p.conductor_cores:.3f} | {p.changed_requests:+.0f}, {p.changed_cpu_s:+.2f} "
            f"({p.after_change_requests:+.0f}, {p.after_change_cpu_s:+.2f}) | "
            f"{p.placement_mb:.1f} / {p.cyborg_mb:.1f} |")
    return "\n".join(lines)


def _fit(xs: Sequence[float], ys: Sequence[float], at: float) -> float:
    """Least-squares line through the measured points, read at ``at`` (one point: through 0)."""
    if len(xs) < 2:
        return ys[0] / xs[0] * at
    slope, intercept = statistics.linear_regression(xs, ys)
    return slope * at + intercept


def extrapolate(points: Sequence[Point], sizes: Sequence[int]) -> str:
    """Per driver, each per-cycle cost (and the database size) fitted linearly in N over the
    measured sizes and read at ``sizes``; rates per 60 s cycle."""
    lines = ["| N | driver | requests/s | Placement CPU cores | conductor CPU cores | "
             "MariaDB CPU cores | first reports: conductor CPU h | DB MB placement / cyborg |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for driver in sorted({p.driver for p in points}):
        mine = sorted((p for p in points if p.driver == driver), key=lambda p: p.n)
        xs = [float(p.n) for p in mine]

        def at(n: int, value: Any, mine: Sequence[Point] = mine, xs: list[float] = xs
               ) -> float:
            return _fit(xs, [float(value(p)) for p in mine], n)

        for n in sizes:
            per_cycle = {
                "requests": at(n, lambda p: p.requests_per_host * p.n),
                "placement": at(n, lambda p: p.placement_cpu_ms_per_host * p.n / 1000),
                "conductor": at(n, lambda p: p.cpu_ms_per_host * p.n / 1000),
                "mariadb": at(n, lambda p: p.mariadb_cpu_ms_per_host * p.n / 1000)}
            lines.append(
                f"| {n} | {driver} | {per_cycle['requests'] / INTERVAL_S:.1f} | "
                f"{per_cycle['placement'] / INTERVAL_S:.2f} | "
                f"{per_cycle['conductor'] / INTERVAL_S:.2f} | "
                f"{per_cycle['mariadb'] / INTERVAL_S:.2f} | "
                f"{at(n, lambda p: p.first_conductor_cpu_s) / 3600:.2f} | "
                f"{at(n, lambda p: p.placement_mb):.0f} / {at(n, lambda p: p.cyborg_mb):.0f} |")
    return "\n".join(lines)


def draw(points: Sequence[Point], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for driver in sorted({p.driver for p in points}):
        mine = sorted((p for p in points if p.driver == driver), key=lambda p: p.n)
        xs = [p.n for p in mine]
        left.plot(xs, [p.requests_per_s for p in mine], marker="o", label=driver)
        right.plot(xs, [p.conductor_cores for p in mine], marker="o", label=driver)
    left.set(title="Placement requests/s at rest", xlabel="hosts (N)", ylabel="requests/s")
    right.set(title="cyborg-conductor CPU at rest", xlabel="hosts (N)",
              ylabel="CPU cores busy")
    for axes in (left, right):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    fig.suptitle("Fleet bench: unchanged hosts reporting every 60 s (bench/fleet)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(HERE / "results.json"))
    parser.add_argument("--png", help="also draw the plot here (needs matplotlib)")
    parser.add_argument("--name", action="append", default=[], metavar="DRIVER=TEXT",
                        help="show driver DRIVER (a results label) as TEXT")
    parser.add_argument("--extrapolate", metavar="N,N",
                        help="also print the costs fitted to these fleet sizes")
    args = parser.parse_args(argv)
    names = dict(pair.split("=", 1) for pair in args.name)
    points = sorted((replace(point, driver=names.get(point.driver, point.driver))
                     for point in map(reduce, json.loads(Path(args.results).read_text()))),
                    key=lambda p: (p.n, p.driver))
    print(table(points))
    if args.extrapolate:
        print()
        print(extrapolate(points, [int(n) for n in args.extrapolate.split(",")]))
    if args.png:
        draw(points, Path(args.png))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
