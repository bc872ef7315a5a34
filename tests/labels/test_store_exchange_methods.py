"""The issue's public interface: ``store.export_eaf`` / ``store.import_eaf`` (and CSV) on the label store."""

from __future__ import annotations


def test_store_methods_round_trip_mois_through_elan_and_csv(open_store, label_db, tmp_path):
    ann = open_store("ann")
    first = ann.add_moi(label_db.rec, "head/face", "head version", 30, 61, "left")
    ann.add_moi(label_db.rec, "left upper limb", "clonic", 100, 190, "left")
    eaf_path = tmp_path / "rec.eaf"
    ann.export_eaf(label_db.rec, eaf_path)
    csv_path = tmp_path / "rec.csv"
    ann.export_csv(csv_path, label_db.rec)

    bea = open_store("bea")  # a second annotator of the same clinic imports the file as hers
    ids = bea.import_eaf(eaf_path, label_db.rec)
    assert len(ids) == 2
    mine = bea.mois(label_db.rec, author="bea").sort_values("start_frame")
    assert list(mine.start_frame) == [30, 100] and list(mine.end_frame) == [61, 190]
    assert list(mine.laterality) == ["left", "left"]
    assert bea.moi(ids[0]).version == 1 and first.version == 1

    # the CSV names ann as author; importing it again as ann would duplicate her labels: refused
    import pytest

    from deepepil.errors import DeepEpilError

    before = len(ann.mois(label_db.rec))
    with pytest.raises(DeepEpilError):
        ann.import_csv(csv_path, label_db.rec)
    assert len(ann.mois(label_db.rec)) == before
