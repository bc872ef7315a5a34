"""bench/bench_gpu.py on the CPU: the no-GPU exit, the /dev/shm-aware prefetch, and both sections at toy size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_gpu  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_without_a_gpu_it_says_so_and_exits_2(capsys):
    assert bench_gpu.main(["--quick"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--device cpu --quick" in err


def test_prefetch_is_lowered_to_fit_shared_memory():
    mib = 2**20
    assert bench_gpu.fit_prefetch(2, 4, 100 * mib, 100_000 * mib) == (2, "")
    assert bench_gpu.fit_prefetch(2, 0, 100 * mib, 1 * mib) == (2, "")  # no workers, no shared memory
    factor, note = bench_gpu.fit_prefetch(4, 4, 100 * mib, 2_000 * mib)  # 1000 MiB usable: 2 batches per worker
    assert factor == 1 and "lowered from 4 to 1" in note
    factor, note = bench_gpu.fit_prefetch(2, 8, 100 * mib, 1_000 * mib)
    assert factor == 1 and "bus error" in note


def test_model_variants_past_the_deadline_are_skipped():
    import time

    variants = (bench_gpu.Variant("float32", False), bench_gpu.Variant("bf16", False))
    out = bench_gpu.bench_model(torch.device("cpu"), (2, 1, 8, 32, 32), 2, 0.125, rounds=1, steps=1, warmup=0,
                                variants=variants, deadline=time.perf_counter())
    first, second = out.values()
    assert first["clips_per_s"] > 0  # the first variant always runs
    assert second["clips_per_s"] != second["clips_per_s"] and "out of time" in second["error"]
    assert bench_gpu.best_bf16(out) is None  # a skipped variant is never the one chosen


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    import deepepil
    from deepepil.synthetic import make_cohort_profiles, make_recording

    root = tmp_path_factory.mktemp("bench_gpu")
    rec = make_recording(make_cohort_profiles(1, seed=0)[0], 0, seconds=4.0, size="tiny", seed=0)
    deepepil.ingest(rec, root, name="rec", streams=["ir", "depth"], progress=False)
    return bench_gpu.clip_dataset(root / "rec.zarr", rec.ground_truth, frames=8, size=32)


def test_model_and_data_sections_measure_on_the_cpu(toy_dataset):
    ds = toy_dataset
    assert ds.in_channels == 2 and ds.channels == ("ir", "depth")
    assert ds[0][0].shape == (2, 8, 32, 32)
    cpu = torch.device("cpu")
    variants = (bench_gpu.Variant("bf16", True), bench_gpu.Variant("float32", False))
    model = bench_gpu.bench_model(cpu, (2, 2, 8, 32, 32), ds.num_classes, 0.125, rounds=2, steps=1, warmup=1,
                                  variants=variants)
    assert list(model) == ["bf16 autocast, channels_last_3d", "float32, NCDHW"]
    assert all(r["clips_per_s"] > 0 and len(r["rounds"]) == 2 for r in model.values())

    data = bench_gpu.bench_data(ds, cpu, variants[0], 0.125, batch=2, workers=1, prefetch=2, rounds=2, waves=2)
    for kind in ("loader", "e2e"):
        assert data[kind]["clips_per_s"] > 0
        assert [r["clips"] for r in data[kind]["runs"]] == [4, 4]  # waves x workers x batch, every round
        assert 0 <= data[kind]["data_wait_share"] <= 1

    rows = bench_gpu.targets(model, data, on_gpu=False)
    assert [r.met for r in rows] == [None, None, None]
    assert all(line.startswith("SKIP") for line in bench_gpu.verdict_lines(rows))
    # on a GPU the same numbers get PASS / FAIL against 100 clips/s and the loader / model ratio
    lines = bench_gpu.verdict_lines(bench_gpu.targets(model, data, on_gpu=True))
    bf16 = model["bf16 autocast, channels_last_3d"]["clips_per_s"]
    expected = [data["e2e"]["clips_per_s"] >= 100, data["loader"]["clips_per_s"] >= bf16, bf16 >= 100]
    assert [line.split()[0] for line in lines] == ["PASS" if ok else "FAIL" for ok in expected]
    assert lines[0].split("  ")[1].startswith("end to end") and "model alone" in lines[2]
