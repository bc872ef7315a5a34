"""Synthetic recordings with head version, clonic jerks and manual automatisms, and their tracks.

* ``temporal_recordings``: four temporal-like recordings of 30 s (tiny images: only their
  exact joints are used), each with a head version, a clonic and a manual automatism MOI,
  versions to both sides.
* ``clicked``: one temporal-like recording of 20 s at the "small" size with
  :func:`~deepepil.analysis.validation.simulated_clicks` on the frames of its automatism,
  version and clonic MOIs (what a clinician's clicks lifted through depth would give).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from deepepil.analysis.validation import simulated_clicks
from deepepil.synthetic import make_cohort_profiles, make_recording

#: (cohort seed, patient index) of temporal-like patients whose first recording has version and clonic jerks.
TEMPORAL = ((1, 0), (1, 2), (2, 0), (2, 2))
#: The clicked recording (also the one notebooks/semiology.ipynb shows).
CLICKED = (2, 2)


def _moi(rec, label: str):
    return next(m for m in rec.script.mois if m.label == label)


@pytest.fixture(scope="session")
def temporal_recordings():
    recs = []
    for seed, index in TEMPORAL:
        rec = make_recording(make_cohort_profiles(index + 1, seed=seed)[index], 0, seconds=30.0, size="tiny",
                             seed=seed)
        assert {"head version", "clonic", "manual automatism"} <= {m.label for m in rec.script.mois}
        recs.append(rec)
    assert {_moi(r, "head version").laterality for r in recs} == {"left", "right"}
    return recs


@dataclass
class Clicked:
    rec: object
    clicks: pd.DataFrame
    first_frame: int
    end_frame: int


@pytest.fixture(scope="session")
def clicked() -> Clicked:
    seed, index = CLICKED
    rec = make_recording(make_cohort_profiles(index + 1, seed=seed)[index], 0, seconds=20.0, size="small",
                         seed=seed)
    first = _moi(rec, "manual automatism").start_frame - 30
    end = _moi(rec, "clonic").end_frame + 15
    return Clicked(rec, simulated_clicks(rec, range(first, end)), first, end)
