"""Ingest faults: bad frames, bad timestamps, existing targets, kills, full disks, parallel ingest."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from deepepil.errors import (
    CorruptSourceError,
    DeepEpilError,
    FrameMismatchError,
    IncompleteStoreError,
    OutOfSpaceError,
    StoreExistsError,
    TimestampError,
)
from deepepil.recordings.ingest import ingest, ingest_many
from deepepil.recordings.source import ArraySource, Frame, RecordingSource, StreamInfo
from deepepil.recordings.store import open_recording, verify

ROOT = Path(__file__).resolve().parents[2]


def arrays(num_frames=40, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "ir": rng.integers(0, 3000, (num_frames, h, w), dtype=np.uint16),
        "depth": rng.integers(500, 4500, (num_frames, h, w), dtype=np.uint16),
    }


class EditedSource(RecordingSource):
    """An ArraySource whose frames can be tampered with: wrong shape, moved timestamps, cut short."""

    def __init__(self, data, *, bad_shape_at=None, times=None, cut=None, path="edited"):
        self.inner = ArraySource(data, fps=30.0, path=path)
        self.path, self.streams, self.calibration, self.attrs = path, self.inner.streams, {}, {}
        self.bad_shape_at, self.times, self.cut = bad_shape_at, times, cut or {}

    def iter_frames(self, stream):
        for f in self.inner.iter_frames(stream):
            if f.index >= self.cut.get(stream, 10**9):
                return
            data, pts = f.data, f.pts_seconds if self.times is None else float(self.times[f.index])
            if self.bad_shape_at == (stream, f.index):
                data = data[:-1]
            yield Frame(f.index, pts, data)


def assert_nothing_published(store: Path, name: str):
    assert not (store / f"{name}.zarr").exists()
    assert not (store / f".{name}.zarr.partial").exists(), "a failed ingest must clean up after itself"
    assert not (store / f".{name}.zarr.lock").exists()


def test_frame_of_wrong_shape_names_stream_and_frame(tmp_path):
    src = EditedSource(arrays(), bad_shape_at=("depth", 33), path="/data/P1.mkv")
    with pytest.raises(FrameMismatchError) as info:
        ingest(src, tmp_path, progress=False)
    msg = str(info.value)
    assert "/data/P1.mkv" in msg and "frame 33" in msg and "depth" in msg and "(24, 32)" in msg
    assert info.value.frame_index == 33
    assert_nothing_published(tmp_path, "P1")


@pytest.mark.parametrize(
    "times, expected",
    [
        (np.r_[np.arange(20), np.arange(19, 39)] / 30.0, "must increase"),
        (np.r_[np.arange(20), np.arange(23, 43)] / 30.0, "frame(s) missing"),
        (np.r_[np.arange(20), [np.nan], np.arange(21, 40)] / 30.0, "timestamp is nan"),
    ],
    ids=["repeated", "gap", "nan"],
)
def test_bad_timestamps_are_refused_with_the_frame(tmp_path, times, expected):
    src = EditedSource(arrays(), times=times, path="rec")
    with pytest.raises(TimestampError, match="frame 20") as info:
        ingest(src, tmp_path, progress=False)
    assert expected in str(info.value)
    assert_nothing_published(tmp_path, "rec")


def test_streams_of_different_length_are_refused(tmp_path):
    src = EditedSource(arrays(), cut={"ir": 30}, path="rec")
    with pytest.raises(FrameMismatchError, match=r"ir end after 30 frames but depth continue"):
        ingest(src, tmp_path, progress=False)
    assert_nothing_published(tmp_path, "rec")


def test_source_shorter_than_promised_is_refused(tmp_path):
    src = EditedSource(arrays(), cut={"ir": 30, "depth": 30}, path="rec")
    with pytest.raises(FrameMismatchError, match="promised 40 frames but 30"):
        ingest(src, tmp_path, progress=False)
    assert_nothing_published(tmp_path, "rec")


def test_existing_target_is_never_overwritten(tmp_path):
    first = ingest(ArraySource(arrays(seed=1), fps=30, path="rec"), tmp_path, progress=False)
    before = open_recording(first).depth.values.copy()
    with pytest.raises(StoreExistsError, match="never overwritten") as info:
        ingest(ArraySource(arrays(seed=2), fps=30, path="rec"), tmp_path, progress=False)
    assert isinstance(info.value, FileExistsError)
    np.testing.assert_array_equal(open_recording(first).depth.values, before)
    assert verify(first).ok


def test_unknown_source_lists_installed_readers(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a recording")
    with pytest.raises(DeepEpilError, match="no reader matched") as info:
        ingest(bogus, tmp_path / "store")
    assert "azure_kinect" in str(info.value) and "numpy" in str(info.value)
    assert not (tmp_path / "store" / "notes.zarr").exists()


SLOW_INGEST = textwrap.dedent(
    """
    import sys, time, numpy as np
    from deepepil.recordings.ingest import ingest
    from deepepil.recordings.source import ArraySource, Frame

    class Slow(ArraySource):
        def iter_frames(self, stream):
            for f in super().iter_frames(stream):
                if f.index > 40 and stream == "depth":
                    time.sleep(0.05)
                yield f

    rng = np.random.default_rng(0)
    data = {"ir": rng.integers(0, 3000, (160, 24, 32), dtype=np.uint16),
            "depth": rng.integers(500, 4500, (160, 24, 32), dtype=np.uint16)}
    print(ingest(Slow(data, fps=30.0, path="rec"), sys.argv[1], progress=False))
    """
)


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_killed_ingest_never_looks_complete_and_a_rerun_finishes(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_INGEST, str(store)])
    try:
        partial = store / ".rec.zarr.partial"
        # wait until a first shard of depth is on disk, i.e. the kill lands mid-write
        assert _wait_for(lambda: (partial / "depth" / "c").exists()), "ingest did not start writing"
        # while it runs, a second ingest of the same recording is refused
        with pytest.raises(IncompleteStoreError, match="another ingest"):
            ingest(ArraySource(arrays(), fps=30, path="rec"), store, progress=False)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (store / "rec.zarr").exists()
    assert partial.exists() and (store / ".rec.zarr.lock").exists()
    with pytest.raises(IncompleteStoreError):
        open_recording(store / "rec.zarr")
    from deepepil.recordings.store import list_recordings

    assert list_recordings(store).empty
    # the rerun (any process) clears the dead one's leftovers and publishes a verified store
    out = subprocess.run([sys.executable, "-c", SLOW_INGEST, str(store)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path == store / "rec.zarr"
    assert verify(path, decode=True).ok
    assert open_recording(path).sizes["time"] == 160
    assert sorted(p.name for p in store.iterdir()) == ["rec.zarr"]


@pytest.fixture
def tiny_filesystem(tmp_path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_gives_a_clear_error_and_publishes_nothing(tiny_filesystem):
    data = arrays(num_frames=64, h=120, w=160)  # ~5 MB of noise: cannot fit in 400 kB
    with pytest.raises(OutOfSpaceError, match="ran out of disk space") as info:
        ingest(ArraySource(data, fps=30, path="rec"), tiny_filesystem, progress=False)
    assert isinstance(info.value, OSError)
    assert_nothing_published(tiny_filesystem, "rec")
    assert shutil.disk_usage(tiny_filesystem).used < 64_000, "the partial store must be removed"


def test_file_size_limit_is_reported_like_a_full_disk(tmp_path):
    # the same fault through another real path: RLIMIT_FSIZE makes writes fail with EFBIG
    script = textwrap.dedent(
        f"""
        import resource, signal, sys, numpy as np
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        from deepepil.errors import OutOfSpaceError
        from deepepil.recordings.ingest import ingest
        from deepepil.recordings.source import ArraySource
        rng = np.random.default_rng(0)
        data = {{"depth": rng.integers(0, 65535, (64, 120, 160), dtype=np.uint16)}}
        try:
            ingest(ArraySource(data, fps=30.0, path="rec"), {str(tmp_path)!r}, progress=False)
        except OutOfSpaceError as exc:
            print("OutOfSpaceError:", exc)
            sys.exit(3)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "nothing was published" in out.stdout
    assert_nothing_published(tmp_path, "rec")


def _npz(path: Path, seed: int) -> Path:
    np.savez(path, **arrays(num_frames=20, seed=seed))
    return path


def test_ingest_many_runs_on_a_local_dask_cluster_and_reports_each_failure(tmp_path):
    sources = [_npz(tmp_path / f"rec{i}.npz", seed=i) for i in range(3)]
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    store = tmp_path / "store"
    with pytest.raises(DeepEpilError, match=r"1 of 4 recording\(s\) failed") as info:
        ingest_many([*sources, bad], store, n_workers=2, progress=False)
    assert "broken.npz" in str(info.value)
    published = sorted(p.name for p in store.glob("*.zarr"))
    assert published == ["rec0.zarr", "rec1.zarr", "rec2.zarr"]
    for i, name in enumerate(published):
        ds = open_recording(store / name)
        np.testing.assert_array_equal(ds.depth.values, arrays(num_frames=20, seed=i)["depth"])
        assert ds.attrs["provenance"]["source_name"] == f"rec{i}.npz"
        assert len(ds.attrs["provenance"]["source_sha256"]) == 64


def test_cli_ingest_verify_info_and_errors(tmp_path):
    src = _npz(tmp_path / "cli.npz", seed=5)
    store = tmp_path / "store"
    run = lambda *a: subprocess.run([sys.executable, "-m", "deepepil.cli", *a], capture_output=True, text=True, timeout=120)
    out = run("ingest", str(src), "--store", str(store), "-q")
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path == store / "cli.zarr"
    out = run("verify", str(path))
    assert out.returncode == 0 and "OK" in out.stdout
    out = run("info", str(path))
    assert out.returncode == 0 and "20 frames at 30 fps" in out.stdout
    out = run("ingest", str(src), "--store", str(store), "-q")
    assert out.returncode == 1 and "exists already" in out.stderr and str(path) in out.stderr
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    out = run("ingest", str(truncated), "--store", str(store), "-q")
    assert out.returncode == 1 and "cut.npz" in out.stderr, out.stderr
    assert not (store / "cut.zarr").exists()
    (path / "depth" / "zarr.json").write_text("{}")
    out = run("verify", str(path))
    assert out.returncode == 1 and "differs: depth/zarr.json" in out.stdout


def test_corrupt_source_error_is_both_deepepil_and_value_error():
    exc = CorruptSourceError("bad header", path="x.mkv", frame_index=7)
    assert isinstance(exc, ValueError) and isinstance(exc, DeepEpilError)
    assert str(exc) == "x.mkv: frame 7: bad header"


def test_stream_info_rejects_unknown_streams():
    with pytest.raises(ValueError, match="not one of"):
        StreamInfo("thermal", (4, 4), "uint16", 1, 30.0)


def test_ingest_many_uses_a_running_scheduler_when_given_its_address(tmp_path):
    from distributed import LocalCluster

    sources = [_npz(tmp_path / f"s{i}.npz", seed=10 + i) for i in range(2)]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        paths = ingest_many(sources, tmp_path / "store", scheduler_address=cluster.scheduler_address,
                            progress=False)
        assert "ingest_task" in cluster.scheduler.task_prefixes  # the work ran on that cluster
    assert paths == [tmp_path / "store" / "s0.zarr", tmp_path / "store" / "s1.zarr"]
    assert all(verify(p).ok for p in paths)
