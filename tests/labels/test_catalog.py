"""The recording catalog: ingest registers, catalog() lists what the caller may see, open by id."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import deepepil
from deepepil.cli import main
from deepepil.errors import AccessDeniedError, NotFoundError, ValidationError
from deepepil.labels import admin, catalog, schema
from deepepil.labels.db import make_engine, session_scope
from deepepil.labels.models import MOI, PATIENT_CODE_PATTERN, AppUser, Clinic, Recording, Role
from deepepil.recordings.readers.numpy import write_numpy
from deepepil.recordings.store import read_manifest
from deepepil.synthetic.patient import make_cohort_profiles
from deepepil.synthetic.recording import make_recording

GENERATED_CODE = re.compile(r"^P-[A-Z2-7]{8}$")


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    monkeypatch.delenv("DEEPEPIL_DATABASE_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    monkeypatch.setenv("DEEPEPIL_USER", "tester")


@pytest.fixture(scope="module")
def recording():
    return make_recording(make_cohort_profiles(1, 0)[0], seconds=1.0, size="tiny", seed=0)


@pytest.fixture(scope="module")
def source_file(recording, tmp_path_factory) -> Path:
    """The tiny recording as a NumPy export, for the command line."""
    return write_numpy(recording, tmp_path_factory.mktemp("source") / "P1_S01.npz")


@pytest.fixture(scope="module")
def stores(recording, tmp_path_factory) -> list[Path]:
    """Two published stores of the tiny recording (registered afresh in each test's database)."""
    folder = tmp_path_factory.mktemp("stores")
    return [deepepil.ingest(recording, folder, name=name, progress=False) for name in ("a", "b")]


@pytest.fixture
def url(db_url) -> str:
    """An upgraded database with clinics Kiel and Bonn, the admin 'tester', clinician ann (Kiel),
    data scientist dan."""
    schema.upgrade(db_url)
    with session_scope(db_url, check=False) as session:
        kiel, bonn = Clinic(name="Kiel"), Clinic(name="Bonn")
        session.add_all([kiel, bonn])
        session.flush()
        session.add_all([AppUser(username="tester", role=Role.admin),
                         AppUser(username="ann", role=Role.clinician, clinic_id=kiel.id),
                         AppUser(username="dan", role=Role.data_scientist)])
    return db_url


def _row(url: str, recording_id: int) -> Recording:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            row = session.get(Recording, recording_id)
            session.expunge(row)
            return row
    finally:
        engine.dispose()


def test_generated_patient_codes():
    codes = {catalog.generate_patient_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(GENERATED_CODE.match(c) and re.match(PATIENT_CODE_PATTERN, c) for c in codes)


def test_ingest_cli_registers_the_recording(url, source_file, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["ingest", str(source_file), "--store", str(store), "--clinic", "Kiel", "--url", url, "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(store / "P1_S01.zarr")
    match = re.fullmatch(r"registered (\S+) as recording (\d+) \(patient (\S+), clinic Kiel\)", out[1])
    assert match and match[1] == out[0]
    recording_id, code = int(match[2]), match[3]
    assert GENERATED_CODE.match(code)

    path = (store / "P1_S01.zarr").resolve()
    row = _row(url, recording_id)
    manifest = read_manifest(path)
    assert row.storage_uri == str(path)
    assert row.checksum == hashlib.sha256((path / "_manifest" / "zarr.json").read_bytes()).hexdigest()
    assert row.size_bytes == manifest["total_bytes"]
    assert (row.streams, row.fps, row.num_frames, row.duration_seconds) == ("rgb,ir,depth", 30.0, 30, 1.0)
    assert row.source_sha256 == hashlib.sha256(source_file.read_bytes()).hexdigest()
    assert row.source_format == json.loads((path / "zarr.json").read_text())["attributes"]["provenance"][
        "source_format"]

    table = deepepil.catalog(url)
    assert list(table.columns) == list(catalog.CATALOG_COLUMNS)
    assert table.to_dict("records")[0] | {"created_at": None} == {
        "recording_id": recording_id, "name": "P1_S01", "patient_code": code, "clinic": "Kiel",
        "fps": 30.0, "num_frames": 30, "duration_seconds": 1.0, "streams": "rgb,ir,depth", "status": "new",
        "storage_uri": str(path), "size_bytes": manifest["total_bytes"], "n_mois": 0, "created_at": None,
    }
    assert str(table["created_at"].dt.tz) == "UTC"


def test_ingest_cli_with_a_given_patient_code(url, source_file, tmp_path, capsys):
    args = ["ingest", str(source_file), "--store", str(tmp_path), "--clinic", "Kiel", "--url", url, "-q"]
    assert main([*args, "--patient", "SYN-0001", "--name", "one"]) == 0
    assert main([*args, "--patient", "SYN-0001", "--name", "two"]) == 0
    table = deepepil.catalog(url)
    assert table["patient_code"].tolist() == ["SYN-0001", "SYN-0001"]
    assert "registered" in capsys.readouterr().out


def test_ingest_cli_refuses_a_patient_code_of_another_clinic_before_ingesting(url, source_file, tmp_path,
                                                                             stores, capsys):
    catalog.register_recording(stores[0], "Bonn", "SYN-0002", url)
    store = tmp_path / "store"
    rc = main(["ingest", str(source_file), "--store", str(store), "--clinic", "Kiel", "--patient", "SYN-0002",
               "--url", url, "-q"])
    assert rc == 1
    assert "patient code 'SYN-0002' belongs to another clinic" in capsys.readouterr().err
    assert not store.exists(), "nothing ingested"
    with pytest.raises(ValidationError, match="belongs to another clinic"):
        catalog.register_recording(stores[1], "Kiel", "SYN-0002", url)
    assert len(deepepil.catalog(url)) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--clinic", "Nowhere"], "no clinic named 'Nowhere'; clinics are: Bonn, Kiel"),
        (["--clinic", "Kiel", "--patient", "jane doe"], "patient code 'jane doe' is not valid"),
        (["--patient", "SYN-0003"], "--patient needs --clinic NAME"),
    ],
)
def test_ingest_cli_registration_errors_come_before_the_ingest(url, source_file, tmp_path, capsys, extra, message):
    store = tmp_path / "store"
    assert main(["ingest", str(source_file), "--store", str(store), "--url", url, "-q", *extra]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not store.exists()


def test_ingest_without_a_database_does_not_register(source_file, tmp_path, capsys):
    assert main(["ingest", str(source_file), "--store", str(tmp_path), "-q"]) == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "P1_S01.zarr")]


def test_ingest_with_a_configured_database_needs_a_clinic(url, source_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPEPIL_DATABASE_URL", url)
    assert main(["ingest", str(source_file), "--store", str(tmp_path / "s"), "-q"]) == 1
    assert "give --clinic NAME" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    assert main(["ingest", str(source_file), "--store", str(tmp_path / "s"), "-q", "--no-register"]) == 0
    assert main(["ingest", str(source_file), "--store", str(tmp_path / "s"), "-q", "--clinic", "Bonn",
                 "--name", "reg"]) == 0
    assert deepepil.catalog()["clinic"].tolist() == ["Bonn"]


def test_failed_registration_keeps_the_store_and_says_how_to_register_it(url, source_file, tmp_path, monkeypatch,
                                                                        capsys):
    def fail(*args, **kwargs):
        raise ValidationError("the database went away")

    monkeypatch.setattr(catalog, "_register", fail)
    store = tmp_path / "store"
    assert main(["ingest", str(source_file), "--store", str(store), "--clinic", "Kiel", "--url", url, "-q"]) == 1
    err = capsys.readouterr().err
    path = store / "P1_S01.zarr"
    assert f"{path} was published but not registered in the catalog: the database went away" in err
    assert f"deepepil catalog register {path} --clinic 'Kiel'" in err
    assert path.exists()
    monkeypatch.undo()
    monkeypatch.setenv("DEEPEPIL_USER", "tester")
    assert main(["catalog", "register", str(path), "--clinic", "Kiel", "--url", url]) == 0
    assert "as recording 1" in capsys.readouterr().out
    assert main(["catalog", "list", "--url", url]) == 0
    assert "P1_S01" in capsys.readouterr().out


def test_registering_twice_returns_the_same_id(url, stores):
    first = catalog.register_recording(stores[0], "Kiel", url=url)
    assert catalog.register_recording(stores[0], "Kiel", url=url) == first
    with pytest.raises(ValidationError, match="registered already"):
        catalog.register_recording(stores[0], "Bonn", url=url)


def test_catalog_visibility_by_role(url, stores, monkeypatch):
    kiel = catalog.register_recording(stores[0], "Kiel", url=url)
    bonn = catalog.register_recording(stores[1], "Bonn", url=url)
    assert catalog.catalog(url, user="tester")["recording_id"].tolist() == [kiel, bonn]
    assert catalog.catalog(url, user="dan")["recording_id"].tolist() == [kiel, bonn]
    assert catalog.catalog(url, user="ann")["recording_id"].tolist() == [kiel]

    monkeypatch.setenv("DEEPEPIL_USER", "ann")
    assert deepepil.catalog(url)["clinic"].tolist() == ["Kiel"]
    assert deepepil.open_recording(kiel, url=url).attrs["recording_id"] == kiel
    with pytest.raises(NotFoundError, match=f"no recording {bonn} visible to user 'ann'"):
        deepepil.open_recording(bonn, url=url)
    with pytest.raises(NotFoundError):
        deepepil.open_recording(9999, url=url)


def test_unregistered_users_on_postgresql_are_refused_and_on_sqlite_are_admins(url, stores):
    catalog.register_recording(stores[0], "Kiel", url=url)
    if url.startswith("sqlite"):
        assert len(catalog.catalog(url, user="newcomer")) == 1
        assert admin.list_users(url=url).set_index("username").loc["newcomer", "role"] == "admin"
    else:
        with pytest.raises(AccessDeniedError, match="'newcomer' is not registered.*ask an admin"):
            catalog.catalog(url, user="newcomer")


def test_who_may_register(url, stores):
    with pytest.raises(AccessDeniedError, match="'dan' \\(data_scientist\\) may not register"):
        catalog.register_recording(stores[0], "Kiel", url=url, user="dan")
    with pytest.raises(AccessDeniedError, match="'ann' \\(clinician\\) may not register recordings of clinic 'Kiel'"):
        catalog.register_recording(stores[0], "Kiel", url=url, user="ann")
    assert catalog.register_recording(stores[0], "Kiel", url=url, user="tester") > 0


def test_open_recording_by_id_from_the_catalog(url, stores, monkeypatch):
    monkeypatch.setenv("DEEPEPIL_DATABASE_URL", url)
    recording_id = catalog.register_recording(stores[0], "Kiel")
    ids = deepepil.catalog()["recording_id"]
    assert isinstance(ids.iloc[0], np.integer)
    ds = deepepil.open_recording(ids.iloc[0])
    assert ds.attrs["recording_id"] == recording_id
    assert ds.attrs["path"] == str(stores[0])
    assert ds.sizes["time"] == 30
    assert deepepil.open_recording(stores[0]).sizes == ds.sizes  # paths still work


def test_n_mois_counts_the_live_mois(url, stores):
    recording_id = catalog.register_recording(stores[0], "Kiel", url=url)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            author = session.scalar(sa.text("SELECT id FROM app_user WHERE username = 'ann'"))
            for start, deleted in ((0, False), (5, False), (10, True)):
                session.add(MOI(recording_id=recording_id, region="head/face", label="head version",
                                start_frame=start, end_frame=start + 3, author_id=author, deleted=deleted))
    finally:
        engine.dispose()
    assert deepepil.catalog(url)["n_mois"].tolist() == [2]
