"""Fixtures for the ML tests: a tiny labelled synthetic cohort in a real label database.

``cohort`` (once per session): four synthetic patients (two frontal-like, two
temporal-like), one 4-second tiny recording each (64x53 IR/depth, 96x54 colour),
ingested into Zarr stores, registered in an SQLite label database by an admin, labelled
through the label service with the generator's ground truth (the seizure with its
localization FLE/TLE, and every MOI), and frozen into a label snapshot.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from deepepil.ml.demo import ADMIN, CLINIC, make_labelled_cohort

SECONDS = 4.0


@pytest.fixture(autouse=True)
def _one_thread():
    # the test machine's cores are shared: tiny tensors do not gain from threads
    torch.set_num_threads(1)


@dataclasses.dataclass(frozen=True)
class Cohort:
    """A labelled tiny cohort; see the module docstring."""

    url: str
    store_dir: Path
    recording_ids: dict[str, int]    # recording name -> id
    truth: dict[str, dict[str, Any]]  # recording name -> ground truth
    snapshot: Any                    # deepepil.labels.snapshot.Snapshot
    admin: str = ADMIN               # the user who registered and labelled everything
    clinic: str = CLINIC

    @property
    def syndromes(self) -> dict[str, str]:
        return {name: t["seizure"]["localization"] for name, t in self.truth.items()}


def make_labelled(url: str, store_dir: Path, patients: int = 4, seconds: float = SECONDS,
                  streams=("rgb", "ir", "depth")) -> tuple[dict[str, int], dict[str, dict]]:
    """Render, ingest, register and label ``patients`` synthetic recordings; return ids and truths."""
    return make_labelled_cohort(url, store_dir, patients=patients, seconds=seconds, streams=streams,
                                clinic=CLINIC, admin_user=ADMIN)


@pytest.fixture(name="make_labelled")
def make_labelled_fixture():
    """:func:`make_labelled`, for tests that build a cohort of their own."""
    return make_labelled


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Cohort:
    root = tmp_path_factory.mktemp("ml-cohort")
    url = f"sqlite:///{root / 'labels.sqlite'}"
    ids, truths = make_labelled(url, root / "store")
    from deepepil.labels import connect

    with connect(url, user=ADMIN) as store:
        snapshot = store.create_snapshot("ml-tests")
    return Cohort(url=url, store_dir=root / "store", recording_ids=ids, truth=truths, snapshot=snapshot)
