"""RTF suite arithmetic on hand-made timings, and the measure() warm-up / repeat logic (no real clocks)."""

from __future__ import annotations

import numpy as np
import pytest

from flashspeech.timing import Measurement, measure, share_batch_timings
from suites.base import SUITES, Sample
from suites.item import EvalItem
from suites.rtf import RtfSuite, stage_times

SR = 16_000


def sample(item_id: str, seconds: float, timings: dict[str, float], **meta) -> Sample:
    item = EvalItem(id=item_id, text="t", prompt_audio="unused.wav", speaker="s")
    audio = np.zeros(int(seconds * SR), np.float32)
    return Sample(item=item, system="sys", audio=audio, sample_rate=SR, timings=timings, meta=meta)


def test_registered():
    assert SUITES["rtf"] is RtfSuite


def test_per_sample_and_aggregate_arithmetic():
    suite = RtfSuite()
    samples = [
        sample("a", 2.0, {"frontend": 0.1, "sampling": 0.3, "decoder": 0.1}),  # 0.5 s / 2 s
        sample("b", 4.0, {"frontend": 0.2, "sampling": 1.4, "decoder": 0.4}),  # 2.0 s / 4 s
        sample("c", 1.0, {"frontend": 0.05, "sampling": 0.1, "decoder": 0.05}),  # 0.2 s / 1 s
        sample("d", 1.0, {}),  # no timings
    ]
    rows = suite.score(samples)
    by_id = {r.item_id: r for r in rows}
    assert by_id["a"].metrics["time_s"] == pytest.approx(0.5)
    assert by_id["a"].metrics["rtf"] == pytest.approx(0.25)
    assert by_id["b"].metrics["time_sampling_s"] == pytest.approx(1.4)
    assert by_id["b"].metrics["audio_s"] == pytest.approx(4.0)
    assert not by_id["d"].ok and "no timings" in by_id["d"].error
    agg = suite.aggregate(rows)
    assert agg["items"] == 4 and agg["failed"] == 1
    assert agg["rtf"] == pytest.approx(2.7 / 7.0)  # Σtime / Σaudio
    assert agg["rtfx"] == pytest.approx(7.0 / 2.7)
    assert agg["rtf_median"] == pytest.approx(0.25)  # median of 0.25, 0.5, 0.2
    assert agg["share_sampling"] == pytest.approx(1.8 / 2.7)
    assert agg["share_frontend"] + agg["share_sampling"] + agg["share_decoder"] == pytest.approx(1.0)


def test_total_key_and_bad_timings():
    assert stage_times({"total": 1.0, "sampling": 0.6}) == (1.0, {"sampling": 0.6, "other": pytest.approx(0.4)})
    assert stage_times({"total": 2.0}) == (2.0, {"total": 2.0})
    with pytest.raises(ValueError, match="more than the reported total"):
        stage_times({"total": 1.0, "sampling": 1.5})
    with pytest.raises(ValueError, match="finite"):
        stage_times({"sampling": -1.0})
    rows = RtfSuite().score([sample("x", 1.0, {"sampling": float("nan")}), sample("y", 1.0, {"sampling": 0.1})])
    assert [r.ok for r in rows] == [False, True]  # one bad sample does not fail its batch


def test_empty_audio_is_an_error_row():
    rows = RtfSuite().score([sample("e", 0.0, {"sampling": 0.1})])
    assert not rows[0].ok and "empty" in rows[0].error


def test_share_batch_timings_keeps_sums():
    shares = share_batch_timings({"sampling": 1.0, "decoder": 0.5}, [1.0, 3.0])
    assert shares[0] == {"sampling": 0.25, "decoder": 0.125}
    assert sum(s["sampling"] for s in shares) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        share_batch_timings({"sampling": 1.0}, [])


class FakeClock:
    """Advances by the callable's simulated cost: each call to `work` costs its next duration."""

    def __init__(self, costs: list[float]):
        self.now, self.costs, self.calls = 0.0, list(costs), 0

    def __call__(self) -> float:
        return self.now

    def work(self) -> int:
        self.now += self.costs[self.calls]
        self.calls += 1
        return self.calls


def test_measure_warmup_and_repeats():
    clock = FakeClock([10.0, 10.0, 1.0, 3.0, 2.0, 4.0])  # two slow warm-up calls, then four repeats
    m = measure(clock.work, warmup=2, repeats=4, clock=clock)
    assert clock.calls == 6
    assert m.times == (1.0, 3.0, 2.0, 4.0) and m.repeats == 4 and m.warmup == 2
    assert m.median == 2.5 and m.min == 1.0
    assert m.iqr == pytest.approx(np.percentile([1, 2, 3, 4], 75) - np.percentile([1, 2, 3, 4], 25))
    assert m.result == 6  # the last call's return value
    assert m.rtf(5.0) == pytest.approx(0.5)
    assert m.summary()["repeats"] == 4.0


def test_measure_no_warmup_and_validation():
    clock = FakeClock([1.0])
    assert measure(clock.work, warmup=0, repeats=1, clock=clock).times == (1.0,)
    with pytest.raises(ValueError):
        measure(clock.work, repeats=0)


def test_measure_synchronises_cuda(monkeypatch):
    import torch

    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(str(device)))
    clock = FakeClock([0.0] * 4)
    measure(clock.work, warmup=1, repeats=3, device="cuda:0", clock=clock)
    assert len(calls) == 1 + 2 * 3 and set(calls) == {"cuda:0"}  # after warm-up, around each repeat
    calls.clear()
    measure(FakeClock([0.0] * 4).work, warmup=1, repeats=3, device="cpu")
    assert calls == []


def test_measurement_is_a_plain_record():
    m = Measurement(times=(1.0, 2.0), warmup=0, device="cpu")
    assert m.median == 1.5 and m.iqr == pytest.approx(0.5)


def test_environment_is_recorded_with_measurements():
    from flashspeech.foundation.environment import environment

    env = environment("cpu", "torch.float32")
    assert env["device"] == "cpu" and env["dtype"] == "torch.float32"
    assert env["torch"] and env["python"] and env["cpu_count"] >= 1 and env["torch_threads"] >= 1
    m = measure(lambda: 1, warmup=0, repeats=2)
    assert m.environment["device"] == "cpu" and m.environment["torch"] == env["torch"]


@pytest.mark.gpu
def test_measure_synchronises_a_real_gpu():
    """Without synchronisation a queued GPU kernel would look almost free; with it, the wall time covers
    the kernel's own time as CUDA events measure it."""
    import torch

    x = torch.randn(4096, 4096, device="cuda")

    def work():
        for _ in range(20):
            x @ x

    m = measure(work, warmup=2, repeats=3, device="cuda")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    work()
    end.record()
    torch.cuda.synchronize()
    kernel_s = start.elapsed_time(end) / 1000
    assert m.median >= 0.8 * kernel_s
    assert m.environment["gpu"] and m.environment["cuda"]
