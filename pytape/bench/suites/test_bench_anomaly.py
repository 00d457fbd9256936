"""Anomaly mode costs only inside ``detect_anomaly()``: the chain recorded
normally (the same fast path as before anomaly detection existed) beside the
chain recorded in anomaly mode (a source location and a checked value per op),
and beside the float-wrapper floor, the yardstick of recording cost (the
normal recording stays within its usual ~1.5-2x of the floor)."""
import pytest

import pytape
from pytape import bench as B

B_ROUNDS = 5


@pytest.mark.parametrize("mode", ["normal", "detect_anomaly", "float floor"])
def test_chain_record_anomaly_mode(benchmark, mode):
    benchmark.group = "chain D=10000: record, outside vs inside detect_anomaly()"
    engine = B.get_engine("pytape" if mode != "float floor" else "floor")

    def record():
        if mode == "normal":
            return B.chain_record(engine, 10_000)
        with pytape.detect_anomaly():
            return B.chain_record(engine, 10_000)

    rec = benchmark.pedantic(record, rounds=B_ROUNDS, warmup_rounds=1)
    B.chain_check(rec, grads=False)
    if mode != "float floor":
        assert (rec.tape._where is None) == (mode == "normal")

