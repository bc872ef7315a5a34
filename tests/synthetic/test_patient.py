"""Synthetic patients: pseudonymous codes, balanced cohorts, patient-level variation."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from deepepil.synthetic.patient import PatientProfile, make_cohort_profiles, make_patient_profile

CODE = re.compile(r"^SYN-[A-Z2-7]{6}$")


def test_profiles_are_deterministic_per_seed_and_index():
    assert make_cohort_profiles(5, seed=3) == make_cohort_profiles(5, seed=3)
    assert make_patient_profile(3, 2) == make_patient_profile(3, 2)
    # a patient does not depend on the cohort size
    assert make_cohort_profiles(2, seed=3)[1] == make_cohort_profiles(6, seed=3)[1]
    assert make_cohort_profiles(5, seed=3) != make_cohort_profiles(5, seed=4)


def test_codes_are_pseudonymous_and_unique():
    profiles = make_cohort_profiles(40, seed=0)
    codes = [p.code for p in profiles]
    assert all(CODE.match(c) for c in codes), codes
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9])
def test_cohort_balances_syndromes_and_sides(n):
    profiles = make_cohort_profiles(n, seed=11)
    counts = Counter(p.syndrome for p in profiles)
    assert abs(counts["frontal"] - counts["temporal"]) <= 1
    # consecutive patients alternate syndromes
    assert all(a.syndrome != b.syndrome for a, b in zip(profiles, profiles[1:]))
    for syndrome in ("frontal", "temporal"):
        sides = Counter(p.lateralization for p in profiles if p.syndrome == syndrome)
        assert abs(sides["left"] - sides["right"]) <= 1


def test_patients_vary():
    profiles = make_cohort_profiles(12, seed=0)
    for field in ("height_m", "girth", "offset_along_m", "offset_across_m", "amplitude_scale",
                  "frequency_scale", "head_rest_yaw_rad"):
        values = [getattr(p, field) for p in profiles]
        assert len(set(values)) == len(values), field
    heights = [p.height_m for p in profiles]
    assert max(heights) - min(heights) > 0.1
    assert 1.5 <= min(heights) and max(heights) <= 1.92


def test_profile_to_dict_is_json_and_carries_localization():
    p = make_cohort_profiles(2, seed=0)[0]
    d = json.loads(json.dumps(p.to_dict()))
    assert d["code"] == p.code
    assert d["localization"] == {"frontal": "FLE", "temporal": "TLE"}[p.syndrome]
    assert p.contralateral != p.lateralization


def test_invalid_profile_values_are_refused():
    with pytest.raises(ValueError, match="frontal"):
        make_patient_profile(0, 0, syndrome="occipital")
    p = make_patient_profile(0, 0)
    with pytest.raises(ValueError, match="lateralization"):
        PatientProfile(**{**p.__dict__, "lateralization": "both"})
    with pytest.raises(ValueError, match=">= 1"):
        make_cohort_profiles(0)
