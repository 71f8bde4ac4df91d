"""The overhead outside NEST (run.json overhead_outside_nest), as a pure function of a rank's
summary: what counts as NEST's own work and what does not (no NEST needed)."""
import pytest

from hpc_brunel.simulation import run as simulation


def summary(**parts):
    base = dict.fromkeys(simulation.SIMULATE_PARTS, 0.0)
    return {"python_phases_s": {"build_network": 2.5, "simulate": 14.0}, "startup_s": 1.2,
            "simulate_parts_s": {**base, **parts}}


def test_nest_work_is_not_overhead_and_everything_else_is():
    timers = {"time_construction_create": 0.1, "time_construction_connect": 2.2, "time_simulate": 13.0,
              "time_communicate_prepare": 0.5, "time_deliver_spike_data": 9.0}
    s = summary(nest_simulate_calls=13.6, read_nest_timers=0.01, read_recorders=0.05, write_spikes=0.04,
                progress_and_stop_check=0.02)
    o = simulation.overhead_outside_nest(s, timers)
    assert o["build_s"] == pytest.approx(2.5 - 2.3)
    assert o["prepare_cleanup_s"] == pytest.approx(13.6 - 13.0 - 0.5)  # the first Prepare is NEST's own
    assert (o["read_nest_timers_s"], o["read_recorders_s"], o["write_spikes_s"], o["progress_and_stop_check_s"]) == \
        (0.01, 0.05, 0.04, 0.02)
    assert o["outside_nest_s"] == pytest.approx(0.2 + 0.1 + 0.12)
    assert o["share_of_simulate"] == pytest.approx(0.42 / 13.0)
    assert o["startup_s"] == 1.2  # shown, not counted: a hand-written script pays it too


def test_timer_jitter_never_makes_negative_overhead():
    timers = {"time_construction_connect": 2.6, "time_simulate": 14.0, "time_communicate_prepare": 0.5}
    o = simulation.overhead_outside_nest(summary(nest_simulate_calls=14.2), timers)
    assert o["build_s"] == 0.0 and o["prepare_cleanup_s"] == 0.0 and o["outside_nest_s"] == 0.0
    assert simulation.overhead_outside_nest(summary(), {})["share_of_simulate"] is None


def test_process_age_is_positive_and_grows():
    import time

    a = simulation.process_age_s()
    time.sleep(0.05)
    b = simulation.process_age_s()
    assert a is not None and 0 < a <= b
