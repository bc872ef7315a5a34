"""ELAN (.eaf) export and import: the time rule, schema validity, pympi-ling both ways, every import error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lxml import etree

from deepepil.errors import AccessDeniedError, ImportFileError, NotFoundError, ValidationError
from deepepil.labels.exchange import eaf
from deepepil.labels.exchange._common import seed_vocabulary
from deepepil.labels.timing import check_fps, frame_to_ms, ms_to_frame

pympi = pytest.importorskip("pympi")  # a hard dependency; this only names the module

FPS = 30.0
NUM_FRAMES = 300
KEY = ["region", "label", "laterality", "centricity", "start_frame", "end_frame"]


# --- the time rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [25.0, 29.97, 30.0, 30000 / 1001, 59.94, 120.0])
def test_every_frame_of_a_day_round_trips_through_milliseconds(fps):
    frames = np.arange(int(24 * 3600 * fps) + 1, dtype=np.int64)
    ms = frame_to_ms(frames, fps)
    assert ms.dtype == np.int64
    assert np.array_equal(ms_to_frame(ms, fps), frames)
    assert np.all(np.diff(ms) > 0)  # distinct, increasing: no two frames share a millisecond


@pytest.mark.parametrize("fps", [25.0, 29.97, 30.0])
def test_scalar_time_rule_matches_the_array_rule(fps):
    for frame in range(0, 5000):
        ms = frame_to_ms(frame, fps)
        assert isinstance(ms, int)
        assert ms == int(np.floor(frame * 1000 / fps + 0.5))
        assert ms_to_frame(ms, fps) == frame


def test_time_rule_examples_round_half_up():
    assert [frame_to_ms(f, 30.0) for f in range(4)] == [0, 33, 67, 100]
    assert frame_to_ms(1, 25.0) == 40
    assert ms_to_frame(20, 25.0) == 1  # exactly half a frame: rounds up (Python's round would give 0)
    assert ms_to_frame(19, 25.0) == 0


@pytest.mark.parametrize("fps", [0, -1, 1000, float("nan"), float("inf")])
def test_fps_outside_the_exact_range_is_refused(fps):
    with pytest.raises(ValueError, match=r"fps must be in \(0, 1000\)"):
        check_fps(fps)


# --- writing ---------------------------------------------------------------------------------


def _mois() -> pd.DataFrame:
    return pd.DataFrame([
        dict(region="head/face", label="head version", laterality="left", centricity=None, start_frame=10,
             end_frame=40, author="ann"),
        dict(region="head/face", label="clonic", laterality=None, centricity="axial", start_frame=20,
             end_frame=50, author="ann"),  # overlaps the first: a second lane
        dict(region="head/face", label="clonic", laterality=None, centricity=None, start_frame=21, end_frame=50,
             author="bea"),  # another author: a tier of its own
        dict(region="left upper limb", label="manual automatism", laterality="left", centricity="distal",
             start_frame=0, end_frame=1, author="ann"),
        dict(region="whole body", label="tonic-clonic phase", laterality="bilateral", centricity=None,
             start_frame=250, end_frame=300, author="ann"),  # ends at the last frame
    ])


@pytest.fixture
def written(tmp_path) -> Path:
    return eaf.write_eaf(_mois(), tmp_path / "rec.eaf", recording_name="rec_S01", fps=FPS,
                         vocabulary=seed_vocabulary(), author="ann", recording_id=7, num_frames=NUM_FRAMES)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    out = df[KEY].astype(object).where(df[KEY].notna(), None)
    return out.sort_values(KEY[:2] + KEY[4:], kind="stable").reset_index(drop=True)


def test_export_is_valid_against_the_eaf_3_0_schema(written):
    assert eaf.validate_eaf(written) == []
    root = etree.parse(str(written)).getroot()
    assert root.get("FORMAT") == "3.0" and root.get("VERSION") == "3.0"
    assert root.get("{http://www.w3.org/2001/XMLSchema-instance}noNamespaceSchemaLocation") == eaf.EAF_SCHEMA_LOCATION


def test_the_schema_rejects_what_elan_would(tmp_path, written):
    broken = tmp_path / "broken.eaf"
    text = written.read_text(encoding="utf-8")
    broken.write_text(text.replace('TIME_UNITS="milliseconds"', 'TIME_UNITS="frames"')
                      .replace('LINGUISTIC_TYPE_REF="moi" TIER_ID="trunk"', 'TIER_ID="trunk"'), encoding="utf-8")
    problems = eaf.validate_eaf(broken)
    assert any("TIME_UNITS" in p for p in problems)
    assert any("LINGUISTIC_TYPE_REF" in p for p in problems)
    assert all(re.match(r"line \d+: ", p) for p in problems)



def _broken(tmp_path: Path, written: Path, edit) -> list[str]:
    root = etree.parse(str(written)).getroot()
    edit(root)
    path = tmp_path / "broken.eaf"
    etree.ElementTree(root).write(str(path), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    problems = eaf.validate_eaf(path)
    assert problems and all(re.match(r"line \d+: ", p) for p in problems)
    return problems


def test_the_schema_rejects_a_tier_with_an_unknown_linguistic_type(tmp_path, written):
    problems = _broken(tmp_path, written,
                       lambda root: root.find("TIER").set("LINGUISTIC_TYPE_REF", "no-such-type"))
    assert any("no-such-type" in p for p in problems)


def test_the_schema_rejects_an_annotation_pointing_to_a_missing_time_slot(tmp_path, written):
    problems = _broken(tmp_path, written,
                       lambda root: next(root.iter("ALIGNABLE_ANNOTATION")).set("TIME_SLOT_REF2", "ts999"))
    assert any("ts999" in p for p in problems)


def test_the_schema_rejects_duplicate_annotation_ids(tmp_path, written):
    def edit(root):
        first, second = list(root.iter("ALIGNABLE_ANNOTATION"))[:2]
        second.set("ANNOTATION_ID", first.get("ANNOTATION_ID"))

    problems = _broken(tmp_path, written, edit)
    assert any("a1" in p for p in problems)


def test_the_schema_rejects_an_unknown_element(tmp_path, written):
    problems = _broken(tmp_path, written, lambda root: etree.SubElement(root.find("TIER"), "COMMENT"))
    assert any("COMMENT" in p for p in problems)


def test_the_schema_accepts_a_file_written_by_pympi(tmp_path):
    doc = pympi.Elan.Eaf(author="someone")
    doc.add_linked_file("rec.mp4", mimetype="video/mp4")
    doc.add_tier("left upper limb")
    doc.add_annotation("left upper limb", 0, 1000, "clonic")
    doc.add_linguistic_type("lat", constraints="Symbolic_Association", timealignable=False)
    doc.add_tier("left upper limb - laterality", ling="lat", parent="left upper limb")
    doc.add_ref_annotation("left upper limb - laterality", "left upper limb", 500, "left")
    doc.add_language("eng", "http://cdb.iso.org/lg/CDB-00138502-001", "English")
    doc.add_controlled_vocabulary("cv")
    doc.add_cv_entry("cv", "cve1", [("clonic", "eng", None)])
    doc.add_external_ref("er1", "iso12620", "http://example.org/dc")
    path = tmp_path / "pympi.eaf"
    pympi.Elan.to_eaf(str(path), doc)
    assert etree.parse(str(path)).getroot().get("FORMAT") in ("2.8", "3.0")
    assert eaf.validate_eaf(path) == []

def test_export_layout(written):
    root = etree.parse(str(written)).getroot()
    header = root.find("HEADER")
    media = header.find("MEDIA_DESCRIPTOR")
    assert media.get("MEDIA_URL") == "file:///rec_S01.mp4" and media.get("RELATIVE_MEDIA_URL") == "./rec_S01.mp4"
    props = {p.get("NAME"): p.text for p in header.findall("PROPERTY")}
    assert props["deepepil:recording_id"] == "7" and props["deepepil:fps"] == "30.0"
    tiers = {t.get("TIER_ID"): t for t in root.findall("TIER")}
    # every active region has a tier (empty ones too, ready for ELAN users), each with two modifier tiers
    for region in seed_vocabulary().codes("region"):
        assert tiers[region].get("LINGUISTIC_TYPE_REF") == eaf.MOI_TYPE
        for kind in ("laterality", "centricity"):
            assert tiers[f"{region} - {kind}"].get("PARENT_REF") == region
    assert tiers["head/face"].get("ANNOTATOR") == "ann"
    assert tiers["head/face #2"].get("ANNOTATOR") == "ann"
    assert tiers["head/face #3"].get("ANNOTATOR") == "bea"
    assert "ANNOTATOR" not in tiers["trunk"].attrib
    cv = {c.get("CV_ID"): [v.text for v in c.iter("CVE_VALUE")] for c in root.findall("CONTROLLED_VOCABULARY")}
    assert cv["moi-label"] == seed_vocabulary().codes("moi_label")
    assert cv["laterality"] == ["left", "right", "bilateral"]
    types = {t.get("LINGUISTIC_TYPE_ID"): t.get("CONTROLLED_VOCABULARY_REF") for t in root.findall("LINGUISTIC_TYPE")}
    assert types == {"moi": "moi-label", "moi-laterality": "laterality", "moi-centricity": "centricity"}
    # time slots in time order, every annotation's value a CV entry it refers to
    values = [int(s.get("TIME_VALUE")) for s in root.iter("TIME_SLOT")]
    assert values == sorted(values)
    entries = {e.get("CVE_ID"): e.findtext("CVE_VALUE") for e in root.iter("CV_ENTRY_ML")}
    for ann in root.iter("ALIGNABLE_ANNOTATION", "REF_ANNOTATION"):
        assert entries[ann.get("CVE_REF")] == ann.findtext("ANNOTATION_VALUE")
    assert "SYN-" not in written.read_text(encoding="utf-8")  # no patient code anywhere


def test_export_reads_back_with_pympi_the_same_intervals_and_labels(written):
    doc = pympi.Elan.Eaf(str(written))
    got = []
    for tier in doc.get_tier_names():
        if doc.tiers[tier][2].get("PARENT_REF"):
            continue
        region = tier.split(" #")[0]
        for start_ms, end_ms, value in doc.get_annotation_data_for_tier(tier):
            got.append((region, value, ms_to_frame(start_ms, FPS), ms_to_frame(end_ms, FPS)))
    expected = [(r["region"], r["label"], r["start_frame"], r["end_frame"]) for r in _mois().to_dict("records")]
    assert sorted(got) == sorted(expected)
    lateralities = doc.get_ref_annotation_data_for_tier("head/face - laterality")
    assert [(start, end, value) for start, end, value, *_ in lateralities] == [(333, 1333, "left")]
    assert doc.get_parameters_for_tier("head/face #3")["ANNOTATOR"] == "bea"
    assert doc.get_cv_entries("moi-label")  # the controlled vocabulary is there for ELAN


def test_export_then_read_round_trips_exactly(written):
    df = eaf.read_eaf(written, fps=FPS, num_frames=NUM_FRAMES, vocabulary=seed_vocabulary())
    pd.testing.assert_frame_equal(_sorted(df), _sorted(_mois()))
    assert set(df["annotator"]) == {"ann", "bea"}


def test_the_same_moi_by_two_annotators_cannot_be_imported_as_one_user(tmp_path):
    both = pd.DataFrame([dict(region="trunk", label="clonic", start_frame=1, end_frame=9, author=who)
                         for who in ("ann", "bea")])
    path = eaf.write_eaf(both, tmp_path / "both.eaf", recording_name="r", fps=FPS, vocabulary=seed_vocabulary())
    [problem] = _problems(path)
    assert "exact duplicate of annotation a1" in problem
    assert "different annotators ('ann', 'bea')" in problem and "export_eaf(..., author=NAME)" in problem


def test_suggestion_tiers_are_written_and_skipped_on_import(tmp_path):
    suggestions = pd.DataFrame([dict(region="trunk", label="tonic posturing", laterality=None, start_frame=5,
                                     end_frame=60, model_version="moi-i3d:3")])
    path = eaf.write_eaf(_mois(), tmp_path / "s.eaf", recording_name="r", fps=FPS, vocabulary=seed_vocabulary(),
                         suggestions=suggestions)
    assert eaf.validate_eaf(path) == []
    doc = pympi.Elan.Eaf(str(path))
    assert doc.get_annotation_data_for_tier("trunk (suggested)") == [(167, 2000, "tonic posturing")]
    assert doc.get_parameters_for_tier("trunk (suggested)")["ANNOTATOR"] == "moi-i3d:3"
    df = eaf.read_eaf(path, fps=FPS, num_frames=NUM_FRAMES, vocabulary=seed_vocabulary())
    assert len(df) == len(_mois())


# --- reading files written by others --------------------------------------------------------------


def test_a_file_written_by_pympi_imports(tmp_path):
    doc = pympi.Elan.Eaf(author="someone")  # pympi writes EAF 2.8 and adds an empty 'default' tier
    doc.add_tier("head/face")
    doc.add_tier("right lower limb")
    doc.add_annotation("head/face", 1000, 2000, "head version")
    doc.add_annotation("head/face", 2500, 3000, "eye version (right)")  # laterality in the value
    doc.add_annotation("right lower limb", 0, 9967, "clonic")
    path = tmp_path / "pympi.eaf"
    doc.to_file(str(path))
    df = eaf.read_eaf(path, fps=FPS, num_frames=NUM_FRAMES, vocabulary=seed_vocabulary())
    assert df[KEY].astype(object).where(df[KEY].notna(), None).values.tolist() == [
        ["head/face", "head version", None, None, 30, 60],
        ["head/face", "eye version", "right", None, 75, 90],
        ["right lower limb", "clonic", None, None, 0, 299],
    ]


def test_a_pympi_file_with_a_modifier_child_tier_imports(tmp_path):
    doc = pympi.Elan.Eaf()
    doc.remove_tier("default")
    doc.add_linguistic_type("moi-laterality", constraints="Symbolic_Association", timealignable=False)
    doc.add_tier("trunk")
    doc.add_tier("trunk - laterality", ling="moi-laterality", parent="trunk")
    doc.add_annotation("trunk", 100, 400, "dystonic posturing")
    doc.add_ref_annotation("trunk - laterality", "trunk", 200, "left")
    path = tmp_path / "child.eaf"
    doc.to_file(str(path))
    df = eaf.read_eaf(path, fps=FPS, num_frames=NUM_FRAMES, vocabulary=seed_vocabulary())
    assert df.loc[0, ["label", "laterality", "start_frame", "end_frame"]].tolist() == [
        "dystonic posturing", "left", 3, 12]


# --- import errors --------------------------------------------------------------------------------

BAD_EAF = """\
<?xml version="1.0" encoding="UTF-8"?>
<ANNOTATION_DOCUMENT AUTHOR="x" DATE="2024-01-01T00:00:00+00:00" FORMAT="3.0" VERSION="3.0">
  <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds"/>
  <TIME_ORDER>
    <TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="0"/>
    <TIME_SLOT TIME_SLOT_ID="ts2" TIME_VALUE="1000"/>
    <TIME_SLOT TIME_SLOT_ID="ts3" TIME_VALUE="2000"/>
    <TIME_SLOT TIME_SLOT_ID="ts4" TIME_VALUE="99000"/>
    <TIME_SLOT TIME_SLOT_ID="ts5"/>
    <TIME_SLOT TIME_SLOT_ID="ts6" TIME_VALUE="1010"/>
  </TIME_ORDER>
  <TIER LINGUISTIC_TYPE_REF="moi" TIER_ID="head/face">
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a1" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
      <ANNOTATION_VALUE>head version</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a2" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
      <ANNOTATION_VALUE>head version</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a3" TIME_SLOT_REF1="ts3" TIME_SLOT_REF2="ts2">
      <ANNOTATION_VALUE>clonic</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a4" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts4">
      <ANNOTATION_VALUE>clonic</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a5" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts3">
      <ANNOTATION_VALUE>head verson</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a6" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts5">
      <ANNOTATION_VALUE>clonic</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a7" TIME_SLOT_REF1="ts2" TIME_SLOT_REF2="ts6">
      <ANNOTATION_VALUE>clonic</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
  </TIER>
  <TIER LINGUISTIC_TYPE_REF="moi" TIER_ID="left arm">
    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a8" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
      <ANNOTATION_VALUE>clonic</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>
  </TIER>
  <TIER LINGUISTIC_TYPE_REF="moi" TIER_ID="notes"/>
  <TIER LINGUISTIC_TYPE_REF="lat" PARENT_REF="head/face" TIER_ID="head/face - laterality">
    <ANNOTATION><REF_ANNOTATION ANNOTATION_ID="a9" ANNOTATION_REF="a1">
      <ANNOTATION_VALUE>up</ANNOTATION_VALUE></REF_ANNOTATION></ANNOTATION>
  </TIER>
  <LINGUISTIC_TYPE LINGUISTIC_TYPE_ID="moi" TIME_ALIGNABLE="true"/>
  <LINGUISTIC_TYPE LINGUISTIC_TYPE_ID="lat" TIME_ALIGNABLE="false" CONSTRAINTS="Symbolic_Association"/>
</ANNOTATION_DOCUMENT>
"""


def _problems(path: Path, **kwargs) -> list[str]:
    with pytest.raises(ImportFileError) as info:
        eaf.read_eaf(path, fps=FPS, num_frames=NUM_FRAMES, vocabulary=seed_vocabulary(), **kwargs)
    assert str(path) in str(info.value) and "nothing imported" in str(info.value)
    return info.value.problems


def test_every_error_is_listed_with_its_line_and_annotation(tmp_path):
    path = tmp_path / "bad.eaf"
    path.write_text(BAD_EAF, encoding="utf-8")
    problems = _problems(path)
    text = "\n".join(problems)
    expected = [
        (r"line 15, annotation a2, tier 'head/face': exact duplicate of annotation a1 \(line 13\)", "duplicate"),
        (r"line 17, annotation a3, tier 'head/face': ends at 1000 ms, not after its start at 2000 ms", "reversed"),
        (r"line 19, annotation a4, tier 'head/face': 0-99000 ms \(frames 0-2970\) is outside the recording, "
         r"which has 300 frames \(10000 ms at 30 fps\)", "out of range"),
        (r"line 21, annotation a5, tier 'head/face': unknown label 'head verson'; closest valid MOI labels: "
         r"'head version'", "unknown label"),
        (r"line 23, annotation a6, tier 'head/face': time slot 'ts5' has no time", "unaligned"),
        (r"line 25, annotation a7, tier 'head/face': 1000-1010 ms is shorter than one frame", "sub-frame"),
        (r"line 28, tier 'left arm': tier 'left arm' is not a region, so its 1 annotation\(s\) cannot be imported; "
         r"name MOI tiers after a region \('head/face', 'trunk'", "unknown tier"),
        (r"line 34, tier 'head/face - laterality': unknown laterality 'up'; valid lateralities: 'left', 'right', "
         r"'bilateral'", "unknown laterality"),
    ]
    for pattern, what in expected:
        assert re.search(pattern, text), f"{what} not reported:\n{text}"
    assert len(problems) == len(expected)  # the empty 'notes' tier and the good a1 are no problems
    assert [int(p.split(",")[0].split()[1]) for p in problems] == sorted(int(p.split(",")[0].split()[1])
                                                                         for p in problems)


def test_malformed_xml_names_the_line(tmp_path):
    path = tmp_path / "malformed.eaf"
    path.write_text(BAD_EAF.replace("</TIER>\n  <TIER LINGUISTIC_TYPE_REF=\"moi\" TIER_ID=\"left arm\">",
                                    "\n  <TIER LINGUISTIC_TYPE_REF=\"moi\" TIER_ID=\"left arm\">", 1), encoding="utf-8")
    problems = _problems(path)
    assert problems and all(re.match(r"line \d+, column \d+: malformed XML: ", p) for p in problems)


def test_not_an_elan_file_and_frame_time_units_are_refused(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text("<?xml version='1.0'?>\n<TEI/>\n", encoding="utf-8")
    assert _problems(path) == ["line 2: not an ELAN file: the root element is <TEI>, expected <ANNOTATION_DOCUMENT>"]
    path.write_text(BAD_EAF.replace('TIME_UNITS="milliseconds"', 'TIME_UNITS="PAL-frames"'), encoding="utf-8")
    assert any("TIME_UNITS is 'PAL-frames'; only 'milliseconds' is supported" in p for p in _problems(path))


def test_external_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("clonic", encoding="utf-8")
    doc = pympi.Elan.Eaf()
    doc.add_tier("trunk")
    doc.add_annotation("trunk", 0, 1000, "ENTITY")
    path = tmp_path / "xxe.eaf"
    doc.to_file(str(path))
    text = path.read_text(encoding="utf-8").replace(
        "<ANNOTATION_DOCUMENT", f'<!DOCTYPE d [<!ENTITY e SYSTEM "file://{secret}">]>\n<ANNOTATION_DOCUMENT', 1)
    path.write_text(text.replace(">ENTITY<", ">&e;<"), encoding="utf-8")
    with pytest.raises(ImportFileError, match="empty annotation"):
        eaf.read_eaf(path, fps=FPS, num_frames=NUM_FRAMES, vocabulary=seed_vocabulary())


# --- through the label service, on SQLite and PostgreSQL ------------------------------------------------


def _add_examples(store, rec: int) -> list:
    return [
        store.add_moi(rec, "head/face", "head version", 10, 40, "left"),
        store.add_moi(rec, "head/face", "clonic", 20, 50, centricity="axial"),
        store.add_moi(rec, "left upper limb", "manual automatism", 0, 1, "left", centricity="distal"),
        store.add_moi(rec, "whole body", "tonic-clonic phase", 250, 300, "bilateral"),
    ]


def test_store_export_import_round_trips_exactly(label_db, open_store, tmp_path):
    ann, bea = open_store("ann"), open_store("bea")
    _add_examples(ann, label_db.rec)
    path = eaf.export_eaf(ann, label_db.rec, tmp_path / "rec.eaf")
    assert eaf.validate_eaf(path) == []
    ids = eaf.import_eaf(bea, path, label_db.rec)
    assert len(ids) == 4
    mois = bea.mois(label_db.rec)
    mine, theirs = mois[mois["author"] == "bea"], mois[mois["author"] == "ann"]
    assert sorted(mine["id"]) == sorted(ids)
    pd.testing.assert_frame_equal(_sorted(mine), _sorted(theirs))
    assert len(bea.revisions("moi", ids[0])) == 1  # each imported MOI has its audit revision


def test_store_export_of_one_annotator(label_db, open_store, tmp_path):
    ann, bea = open_store("ann"), open_store("bea")
    _add_examples(ann, label_db.rec)
    bea.add_moi(label_db.rec, "trunk", "tonic posturing", 100, 200)
    path = eaf.export_eaf(ann, label_db.rec, tmp_path / "bea.eaf", author="bea")
    df = eaf.read_eaf(path, fps=FPS, num_frames=NUM_FRAMES, vocabulary=seed_vocabulary())
    assert df[["region", "label", "annotator"]].values.tolist() == [["trunk", "tonic posturing", "bea"]]
    assert etree.parse(str(path)).getroot().get("AUTHOR") == "bea"


def test_store_import_with_errors_imports_nothing(label_db, open_store, tmp_path):
    ann = open_store("ann")
    path = tmp_path / "bad.eaf"
    path.write_text(BAD_EAF, encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        eaf.import_eaf(ann, path, label_db.rec)
    assert len(info.value.problems) == 8
    assert len(ann.mois(label_db.rec)) == 0


def test_store_import_of_labels_the_user_has_already_imports_nothing(label_db, open_store, tmp_path):
    ann = open_store("ann")
    _add_examples(ann, label_db.rec)
    path = eaf.export_eaf(ann, label_db.rec, tmp_path / "rec.eaf")
    ann.add_moi(label_db.rec, "trunk", "tonic posturing", 100, 200)
    extra = pympi.Elan.Eaf(str(path))
    extra.add_annotation("trunk", 5000, 6000, "behavior arrest")  # new, but the rest repeats ann's MOIs
    extra.to_file(str(path))
    with pytest.raises(ImportFileError) as info:
        eaf.import_eaf(ann, path, label_db.rec)
    assert len(info.value.problems) == 4
    assert all("which ann already has" in p for p in info.value.problems)
    assert len(ann.mois(label_db.rec)) == 5


def test_store_dry_run_checks_and_writes_nothing(label_db, open_store, tmp_path):
    ann, bea = open_store("ann"), open_store("bea")
    _add_examples(ann, label_db.rec)
    path = eaf.export_eaf(ann, label_db.rec, tmp_path / "rec.eaf")
    assert eaf.import_eaf(bea, path, label_db.rec, dry_run=True) == []
    assert set(bea.mois(label_db.rec)["author"]) == {"ann"}


def test_store_import_needs_a_visible_recording(label_db, open_store, tmp_path):
    ann, carl = open_store("ann"), open_store("carl")  # carl is a clinician of the other clinic
    _add_examples(ann, label_db.rec)
    path = eaf.export_eaf(ann, label_db.rec, tmp_path / "rec.eaf")
    with pytest.raises(NotFoundError):
        eaf.import_eaf(carl, path, label_db.rec)
    with pytest.raises(NotFoundError):
        eaf.export_eaf(carl, label_db.rec, tmp_path / "no.eaf")
    assert not (tmp_path / "no.eaf").exists()


def test_store_import_by_a_user_who_may_not_label_is_refused_before_reading(label_db, open_store, tmp_path):
    dan = open_store("dan")  # a data scientist writes suggestions, not MOIs
    with pytest.raises(AccessDeniedError, match="dan .* may not import labels"):
        eaf.import_eaf(dan, tmp_path / "never-read.eaf", label_db.rec)


def test_store_import_refused_by_the_service_names_the_rows_and_imports_nothing(label_db, open_store, tmp_path,
                                                                                 monkeypatch):
    """Should the service still refuse rows the file check passed (a concurrent duplicate, say),
    its messages are reported at the rows' lines and nothing is stored."""
    ann, bea = open_store("ann"), open_store("bea")
    _add_examples(ann, label_db.rec)
    path = eaf.export_eaf(ann, label_db.rec, tmp_path / "rec.eaf")
    real = bea.add_mois

    def add_mois_then_refuse(rows):
        with bea.batch():
            real(rows)  # writes, then the refusal below rolls the batch back
            error = ValidationError("2 of the MOIs are invalid, nothing was stored")
            error.problems = [(1, "an identical MOI exists already: MOI 99"), (3, "outside the recording")]
            raise error

    monkeypatch.setattr(bea, "add_mois", add_mois_then_refuse)
    with pytest.raises(ImportFileError) as info:
        eaf.import_eaf(bea, path, label_db.rec)
    assert len(info.value.problems) == 2
    assert all(re.match(r"line \d+, annotation a\d+, tier '[^']+': (an identical|outside)", p)
               for p in info.value.problems)
    assert set(bea.mois(label_db.rec)["author"]) == {"ann"}


def test_store_export_with_suggestions(label_db, open_store, tmp_path):
    ann, dan = open_store("ann"), open_store("dan")
    _add_examples(ann, label_db.rec)
    dan.add_suggestion(label_db.rec, "trunk", "tonic posturing", 5, 60, 0.9, "moi-i3d:3", "left")
    path = eaf.export_eaf(ann, label_db.rec, tmp_path / "rec.eaf", include_suggestions=True)
    assert eaf.validate_eaf(path) == []
    doc = pympi.Elan.Eaf(str(path))
    assert doc.get_annotation_data_for_tier("trunk (suggested)") == [(167, 2000, "tonic posturing")]
    bea = open_store("bea")
    assert len(eaf.import_eaf(bea, path, label_db.rec)) == 4  # suggestions are not imported as MOIs
