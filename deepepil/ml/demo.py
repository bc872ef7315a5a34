"""A labelled synthetic cohort: rendered, ingested, registered and labelled with the generator's truth.

>>> from deepepil.ml.demo import make_labelled_cohort
>>> ids, truths = make_labelled_cohort("sqlite:///labels.sqlite", "store/", patients=12)  # doctest: +SKIP

Used by the ML tests (``tests/ml/conftest.py``) and the learning demonstration
(``bench/demo_learning.py``). Every seizure (with its localization FLE/TLE and side) and every
movement of interest (MOI) of the generator's ground truth is added through the label service,
so a snapshot of the database holds the exact labels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union

__all__ = ["make_labelled_cohort", "CLINIC", "ADMIN"]

#: Clinic and admin user the cohort is registered under.
CLINIC = "North"
ADMIN = "root"


def make_labelled_cohort(url: str, store_dir: Union[str, os.PathLike], patients: int = 4, seconds: float = 4.0,
                         streams: Sequence[str] = ("rgb", "ir", "depth"), *, size: str = "tiny", seed: int = 0,
                         clinic: str = CLINIC, admin_user: str = ADMIN,
                         on_recording: Optional[Callable[[str], None]] = None) -> tuple[dict[str, int], dict[str, Any]]:
    """Render, ingest, register and label one synthetic recording per patient.

    Parameters
    ----------
    url : str
        Label database URL; its schema is created or upgraded, ``clinic`` and ``admin_user`` are added.
    store_dir : path
        Folder the recordings are ingested into.
    patients : int
        Number of patients; FLE-like and TLE-like alternate (balanced), sides balanced within each.
    seconds : float
        Duration of every recording.
    streams : sequence of {"rgb", "ir", "depth"}
        Streams to ingest.
    size : {"tiny", "small", "full"}
        Image size of the synthetic cameras.
    seed : int
        Seed of the cohort (patients and their scripts).
    on_recording : callable, optional
        Called with each recording's name once it is labelled (for progress).

    Returns
    -------
    ids : dict
        Recording name -> recording id in the label database.
    truths : dict
        Recording name -> the generator's ground truth (``seizure``, ``mois``, ``patient_code``, ...).
    """
    from deepepil.labels import admin, catalog, connect, schema
    from deepepil.recordings.ingest import ingest
    from deepepil.synthetic import make_cohort_profiles, make_recording

    schema.upgrade(url)
    admin.add_clinic(clinic, url=url)
    admin.add_user(admin_user, "admin", url=url)
    ids: dict[str, int] = {}
    truths: dict[str, Any] = {}
    with connect(url, user=admin_user) as store:
        for profile in make_cohort_profiles(patients, seed=seed):
            rec = make_recording(profile, 0, seconds=seconds, size=size, seed=seed)
            path = ingest(rec, Path(store_dir), streams=list(streams), progress=False)
            rid = catalog.register_recording(path, clinic, profile.code, url=url, user=admin_user)
            truth = rec.ground_truth
            seizure = truth["seizure"]
            store.add_seizure(rid, seizure["onset_frame"], seizure["offset_frame"],
                              localization=seizure["localization"], lateralization=seizure["lateralization"])
            for m in truth["mois"]:
                store.add_moi(rid, m["region"], m["label"], m["start_frame"], m["end_frame"], m["laterality"])
            ids[rec.name], truths[rec.name] = rid, truth
            if on_recording is not None:
                on_recording(rec.name)
    return ids, truths
