"""The step-runner skeleton the OVS and firmware runners share: dispatch and the wait loop."""

from __future__ import annotations

import pytest

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.host.firmware_apply import FirmwareRunner
from cyborg_smartnic.host.runner import StepFailed
from cyborg_smartnic.host.steps import FW_RESET, RELOAD_DRIVER, SET_OVS_CONFIG, Step

PF = "0000:3b:00.0"
EMPTY = Host(hostname="h", physical_functions=(), skipped=())


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _runner(time: FakeTime) -> FirmwareRunner:
    return FirmwareRunner("/nonexistent", lambda: EMPTY, time.sleep, time.clock, timeout=5.0,
                          poll_interval=2.0)


def test_wait_until_returns_the_first_answer_polling_between_tries() -> None:
    time = FakeTime()
    answers = iter([None, None, "there"])
    step = Step(FW_RESET, PF, "test")
    assert _runner(time).wait_until(step, lambda: next(answers), 5.0, lambda: "late") == "there"
    assert time.slept == [2.0, 2.0]


def test_wait_until_fails_the_step_after_the_timeout() -> None:
    time = FakeTime()
    step = Step(FW_RESET, PF, "test")
    with pytest.raises(StepFailed, match=f"^{PF}: late$"):
        _runner(time).wait_until(step, lambda: None, 5.0, lambda: "late")
    assert time.now == 6.0 and time.slept == [2.0, 2.0, 2.0]


def test_a_pf_that_does_not_come_back_names_itself() -> None:
    time = FakeTime()
    step = Step(RELOAD_DRIVER, "ice", "test", disturbs_pfs=(PF,))
    with pytest.raises(StepFailed, match=f"^ice: {PF} did not come back within 5s$"):
        _runner(time)._wait_back(step, (PF,))


def test_a_kind_the_runner_does_not_know_is_refused_by_name() -> None:
    step = Step(SET_OVS_CONFIG, "other_config:hw-offload", "test")
    with pytest.raises(StepFailed, match="cannot run set_ovs_config here"):
        _runner(FakeTime()).run(step, EMPTY)
