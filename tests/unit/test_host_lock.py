"""One host apply at a time: the flock, what the driver reads while it is held, and two
real ``host apply`` commands racing on the emulated example host."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.host import lock
from cyborg_smartnic.hostgen import build_scenario
from cyborg_smartnic.hostgen.kernel import KernelEmulator, emulated_kernel
from cyborg_smartnic.report import DeviceSpec
from tests.fixtures.clock import Clock

EXAMPLE_CONFIG = str(Path(__file__).parents[2] / "deploy" / "host.example.yaml")
CX_PF = "0000:3b:00.0"



def test_a_second_holder_waits_then_fails_naming_the_first(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "cyborg-smartnic" / "host-apply.lock")
    clock = Clock()
    lines: list[str] = []
    with lock.hold(path, wait=0):
        with pytest.raises(lock.LockBusy) as busy, lock.hold(path, wait=30, progress=lines.append,
                                                             clock=clock, sleep=clock.sleep):
            pass
        assert 30.0 <= clock.now <= 30.0 + 2 * lock.POLL
    assert str(busy.value) == (f"another host apply (pid {os.getpid()}) holds {path}; nothing "
                               f"was done (waited 30s; --wait SECONDS to wait longer)")
    assert lines == [f"waiting up to 30s for another host apply (pid {os.getpid()}) to finish"]
    with lock.hold(path, wait=0):  # released by the first holder: free again
        pass


def test_the_driver_reads_which_pfs_an_apply_changes(tmp_path: Path) -> None:
    path = str(tmp_path / "host-apply.lock")
    assert lock.apply_in_progress(path) == frozenset()  # no file: no apply
    with lock.hold(path, wait=0) as held:
        assert lock.apply_in_progress(path) == frozenset()  # still planning
        held.changing([CX_PF, CX_PF, "0000:18:00.1"])
        assert lock.apply_in_progress(path) == {CX_PF, "0000:18:00.1"}
    assert lock.apply_in_progress(path) == frozenset()  # released, file still there
    Path(path).write_text("[[[[not json")  # written by someone else, and not held
    assert lock.apply_in_progress(path) == frozenset()


def test_an_unwritable_lock_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(lock.LockUnavailable, match=r"cannot take the host apply lock "
                                                   r".*/run/x\.lock: "), \
            lock.hold(str(blocker / "x.lock"), wait=0):
        pass


def spec(address: str, model: str) -> DeviceSpec:
    return DeviceSpec(address=address, vendor="15b3", model=model, std_board_info="{}",
                      deployables=())


def test_pfs_being_changed_are_reported_as_last_time() -> None:
    last = (spec("0000:18:00.0", "old"), spec(CX_PF, "old"))
    current = (spec("0000:18:00.0", "new"), spec(CX_PF, "new"), spec("0000:5e:00.0", "new"))
    held = lock.as_last_reported(current, last, frozenset({CX_PF, "0000:5e:00.0"}))
    assert held == (spec("0000:18:00.0", "new"), spec(CX_PF, "old"))


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelEmulator]:
    with emulated_kernel(build_scenario(tmp_path / "host", "example")) as emulator:
        yield emulator


def test_two_applies_never_interleave(kernel: KernelEmulator, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A holds the host and fails late; B (another host.yaml) fails clearly without --wait,
    and with it runs after A's rollback, so A's rollback cannot revert B's work."""
    root = str(kernel.tree.root)
    second = tmp_path / "b.yaml"
    second.write_text("hugepages:\n  - {node: 0, size: 1G, count: 12}\n")
    entered, gate = threading.Event(), threading.Event()
    write = kernel.write

    def slow_then_failing(path: str, value: str) -> None:
        if path.endswith(f"{CX_PF}/sriov_numvfs") and value.strip() == "8":
            entered.set()
            gate.wait(60)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(path, value)

    kernel.write = slow_then_failing  # type: ignore[method-assign]
    codes: dict[str, int] = {}
    first = threading.Thread(target=lambda: codes.setdefault("a", main(
        ["host", "apply", "--yes", "--sysfs-root", root, EXAMPLE_CONFIG])))
    first.start()
    assert entered.wait(60)
    writes = len(kernel.writes)
    lock_file = os.path.join(root, "run", "cyborg-smartnic", "host-apply.lock")
    assert lock.apply_in_progress(lock_file) == {CX_PF}

    assert main(["host", "apply", "--yes", "--sysfs-root", root, str(second)]) == 1
    _, err = capsys.readouterr()
    assert err == (f"cyborg-smartnic: error: another host apply (pid {os.getpid()}) holds "
                   f"{lock_file}; nothing was done (waited 1s; --wait SECONDS to wait "
                   f"longer)\n")
    assert len(kernel.writes) == writes

    waiting = threading.Thread(target=lambda: codes.setdefault("b", main(
        ["host", "apply", "--yes", "--wait", "60", "--sysfs-root", root, str(second)])))
    waiting.start()
    gate.set()
    first.join(120)
    waiting.join(120)
    out, err = capsys.readouterr()
    assert codes == {"a": 1, "b": 0}, err
    assert f"waiting up to 60s for another host apply (pid {os.getpid()}) to finish" in out
    assert kernel.num_vfs(CX_PF) == 4  # A rolled back
    assert kernel.hugepages(0, 1048576) == 12  # B's change, made after A's rollback, stays
    assert kernel.hugepages(1, 1048576) == 8
    assert lock.apply_in_progress(lock_file) == frozenset()
