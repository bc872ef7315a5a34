"""Synthetic patient-in-bed recordings with exact ground truth (demo, tests, benchmarks).

>>> from deepepil.synthetic import make_cohort_profiles, make_recording
>>> patient = make_cohort_profiles(2, seed=0)[0]
>>> rec = make_recording(patient, seconds=2.0, size="tiny", seed=0)
>>> sorted(rec.streams)
['depth', 'ir', 'rgb']
"""

from deepepil.synthetic.cohort import synthesize_cohort
from deepepil.synthetic.patient import PatientProfile, make_cohort_profiles, make_patient_profile
from deepepil.synthetic.recording import SIZES, SyntheticRecording, make_recording

__all__ = [
    "SIZES",
    "SyntheticRecording",
    "make_recording",
    "PatientProfile",
    "make_cohort_profiles",
    "make_patient_profile",
    "synthesize_cohort",
]
