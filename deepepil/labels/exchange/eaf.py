"""ELAN (.eaf, EAF 3.0) export and import of a recording's movements of interest.

Layout of an exported file (docs/labels-exchange.md has a full example):

- one tier per body region, ``TIER_ID`` = the region code (``"left upper limb"``), linguistic
  type ``moi`` (time-alignable) whose controlled vocabulary ``moi-label`` holds the MOI labels;
  each annotation is one MOI, ``ANNOTATION_VALUE`` = its label, ``ANNOTATOR`` = its author.
  MOIs of several authors, or MOIs that overlap in time, go to further tiers of the region
  (``"left upper limb #2"``, ...), because an ELAN tier cannot hold overlapping annotations;
- two child tiers per region tier, ``"<tier> - laterality"`` and ``"<tier> - centricity"``
  (Symbolic_Association, controlled vocabularies ``laterality`` and ``centricity``), holding
  the modifiers of the MOI above them (none when the MOI has none);
- times in milliseconds, ``ms = floor(frame * 1000 / fps + 0.5)`` and back
  ``frame = floor(ms * fps / 1000 + 0.5)``, exact for every frame (see
  :mod:`deepepil.labels.timing`);
- ``MEDIA_DESCRIPTOR`` names ``<recording name>.mp4`` next to the file (no patient identity
  anywhere); ``PROPERTY`` elements carry the recording id, fps and frame count.

The export validates against our EAF 3.0 schema (:func:`validate_eaf`;
``deepepil/labels/schemas/eaf-3.0.xsd``, written for deepepil from the format documentation,
not ELAN's official ``EAFv3.0.xsd`` and not yet checked against it). Written files still name
the official schema location (:data:`EAF_SCHEMA_LOCATION`), as ELAN expects.
The import also reads files written by other tools (pympi-ling, EAF 2.7/2.8): a tier named
after a region with labels as annotation values is enough, and ``"label (left)"`` is read as label and laterality.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import quote

import pandas as pd
from lxml import etree

from deepepil.labels.exchange._common import (
    MODIFIER_KINDS,
    Problems,
    check_may_import,
    existing_duplicates,
    moi_frame,
    recording_info,
    store_vocabulary,
    write_rows,
)
from deepepil.labels.timing import check_fps, frame_to_ms, ms_to_frame

if TYPE_CHECKING:
    from deepepil.labels._validate import Vocabulary

__all__ = [
    "EAF_SCHEMA_LOCATION",
    "MOI_TYPE",
    "SUGGESTION_TYPE",
    "READ_COLUMNS",
    "schema",
    "validate_eaf",
    "write_eaf",
    "read_eaf",
    "export_eaf",
    "import_eaf",
]

EAF_SCHEMA_LOCATION = "http://www.mpi.nl/tools/elan/EAFv3.0.xsd"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: Linguistic type of the MOI tiers.
MOI_TYPE = "moi"
#: Linguistic type of the (export-only) suggestion tiers; the import skips them.
SUGGESTION_TYPE = "moi-suggestion"
_MODIFIER_TYPES = {kind: f"moi-{kind}" for kind in MODIFIER_KINDS}
_LABEL_CV = "moi-label"
_LANG = "eng"
_LANG_DEF = "http://cdb.iso.org/lg/CDB-00138502-001"
#: ELAN's four tier constraints; the modifier tiers use Symbolic_Association.
_CONSTRAINTS = {
    "Time_Subdivision": "Time subdivision of parent annotation's time interval, no time gaps allowed within "
                        "this interval",
    "Symbolic_Subdivision": "Symbolic subdivision of a parent annotation. Annotations refering to the same parent "
                            "are ordered",
    "Symbolic_Association": "1-1 association with a parent annotation",
    "Included_In": "Time alignable annotations within the parent annotation's time interval, gaps are allowed",
}
_LANE_RE = re.compile(r"^(?P<base>.*?)(?: #(?P<lane>[0-9]+))?$")
_LATERALITY_IN_VALUE = re.compile(r"^(?P<label>.+?)\s*\((?P<laterality>[^()]+)\)$")

#: Columns of :func:`read_eaf`.
READ_COLUMNS: tuple[str, ...] = (
    "region", "label", "laterality", "centricity", "start_frame", "end_frame", "start_ms", "end_ms",
    "annotator", "tier", "annotation_id", "line",
)


# --- schema --------------------------------------------------------------------------------

_SCHEMA: Optional[etree.XMLSchema] = None


def schema() -> etree.XMLSchema:
    """Our EAF 3.0 XML schema (``deepepil/labels/schemas/eaf-3.0.xsd``), loaded once.

    Written for deepepil from the documented structure of the ELAN Annotation Format 3.0; it is
    not ELAN's official ``EAFv3.0.xsd`` (see ``deepepil/labels/schemas/README.md``).
    """
    global _SCHEMA
    if _SCHEMA is None:
        from importlib.resources import files

        with files("deepepil.labels.schemas").joinpath("eaf-3.0.xsd").open("rb") as fh:
            _SCHEMA = etree.XMLSchema(etree.parse(fh))
    return _SCHEMA


def validate_eaf(path: str | os.PathLike) -> list[str]:
    """Problems of the file at ``path`` against our EAF 3.0 schema (:func:`schema`).

    As ``"line N: message"``; empty when valid.
    """
    doc = etree.parse(os.fspath(path), etree.XMLParser(resolve_entities=False, no_network=True))
    xsd = schema()
    if xsd.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in xsd.error_log]


# --- writing -------------------------------------------------------------------------------


def _lanes(intervals: Sequence[tuple[int, int]]) -> list[int]:
    """Lane of each interval (given sorted by start) so that no lane holds two that overlap."""
    ends: list[int] = []
    out = []
    for start, end in intervals:
        for lane, last_end in enumerate(ends):
            if last_end <= start:
                ends[lane] = end
                out.append(lane)
                break
        else:
            ends.append(end)
            out.append(len(ends) - 1)
    return out


def _optional(value: Any) -> Optional[str]:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


class _Writer:
    def __init__(self) -> None:
        self.slots: list[tuple[int, int]] = []  # (ms, order)
        self.next_annotation = 0

    def slot(self, ms: int) -> int:
        self.slots.append((ms, len(self.slots)))
        return len(self.slots) - 1

    def annotation_id(self) -> str:
        self.next_annotation += 1
        return f"a{self.next_annotation}"


def _vocab_entries(vocabulary: Vocabulary, kind: str, used: Sequence[Optional[str]]) -> list[str]:
    codes = vocabulary.codes(kind)
    extra = sorted({u for u in used if u is not None and u not in codes})
    return codes + extra


def write_eaf(
    mois: pd.DataFrame,
    path: str | os.PathLike,
    *,
    recording_name: str,
    fps: float,
    vocabulary: Vocabulary,
    author: str = "deepepil",
    recording_id: Optional[int] = None,
    num_frames: Optional[int] = None,
    suggestions: Optional[pd.DataFrame] = None,
    date: Optional[dt.datetime] = None,
) -> Path:
    """Write MOIs as an ELAN EAF 3.0 file (the layout in the module docstring); return the path.

    Parameters
    ----------
    mois : pandas.DataFrame
        Columns ``region, label, laterality, centricity, start_frame, end_frame`` and,
        optionally, ``author`` (written as the tiers' ``ANNOTATOR``).
    path : path-like
        The ``.eaf`` file to write (replaced when it exists).
    recording_name : str
        Names the media file (``<recording_name>.mp4``); never a patient's identity.
    fps : float
        The recording's frame rate (frames to milliseconds).
    vocabulary : deepepil.labels._validate.Vocabulary
        Regions, MOI labels, lateralities and centricities: every active region gets a tier,
        the labels and modifiers become ELAN controlled vocabularies.
    author : str
        The document's ``AUTHOR``.
    recording_id, num_frames : int, optional
        Written as header properties, for the record.
    suggestions : pandas.DataFrame, optional
        Pending model suggestions (``region, label, laterality, start_frame, end_frame,
        model_version``) written to ``"<region> (suggested)"`` tiers, which imports skip.
    date : datetime, optional
        The document's ``DATE`` (default now, UTC).
    """
    fps = check_fps(fps)
    path = Path(path)
    w = _Writer()
    mois = mois.copy()
    for col in ("laterality", "centricity", "author"):
        if col not in mois:
            mois[col] = None
    date = date or dt.datetime.now(dt.timezone.utc)
    if date.tzinfo is None:
        date = date.replace(tzinfo=dt.timezone.utc)

    regions = _vocab_entries(vocabulary, "region", list(mois["region"]) +
                             (list(suggestions["region"]) if suggestions is not None else []))
    labels = _vocab_entries(vocabulary, "moi_label", list(mois["label"]) +
                            (list(suggestions["label"]) if suggestions is not None else []))
    modifiers = {kind: _vocab_entries(vocabulary, kind, [_optional(v) for v in mois[col]])
                 for col, kind in MODIFIER_KINDS.items()}
    cve_ids = {_LABEL_CV: {v: f"{_LABEL_CV}-{i + 1}" for i, v in enumerate(labels)}}
    for kind, values in modifiers.items():
        cve_ids[kind] = {v: f"{kind}-{i + 1}" for i, v in enumerate(values)}

    root = etree.Element("ANNOTATION_DOCUMENT", nsmap={"xsi": _XSI})
    root.set("AUTHOR", author)
    root.set("DATE", date.isoformat(timespec="seconds"))
    root.set("FORMAT", "3.0")
    root.set("VERSION", "3.0")
    root.set(f"{{{_XSI}}}noNamespaceSchemaLocation", EAF_SCHEMA_LOCATION)
    header = etree.SubElement(root, "HEADER", MEDIA_FILE="", TIME_UNITS="milliseconds")
    media = quote(f"{recording_name}.mp4")
    etree.SubElement(header, "MEDIA_DESCRIPTOR", MEDIA_URL=f"file:///{media}", MIME_TYPE="video/mp4",
                     RELATIVE_MEDIA_URL=f"./{media}")
    props = {"URN": f"urn:nl-mpi-tools-elan-eaf:{uuid.uuid4()}"}
    if recording_id is not None:
        props["deepepil:recording_id"] = str(int(recording_id))
    props["deepepil:recording_name"] = recording_name
    props["deepepil:fps"] = repr(fps)
    if num_frames is not None:
        props["deepepil:num_frames"] = str(int(num_frames))
    props["deepepil:time_rule"] = "ms = floor(frame * 1000 / fps + 0.5); frame = floor(ms * fps / 1000 + 0.5)"
    time_order = etree.SubElement(root, "TIME_ORDER")

    tiers: list[etree._Element] = []

    def add_group(rows: pd.DataFrame, base: str, tier_type: str, annotator_col: str, with_modifiers: bool) -> None:
        # the rows of one region, sorted by start; lane k > 0 is the tier "<base> #<k+1>"
        lanes: dict[int, list[dict]] = defaultdict(list)
        k0 = 0
        for who, part in rows.groupby(annotator_col, dropna=False, sort=True):
            part_lanes = _lanes(list(zip(part["start_frame"], part["end_frame"])))
            for rec, lane in zip(part.to_dict("records"), part_lanes):
                lanes[k0 + lane].append(rec)
            k0 += max(part_lanes) + 1
        for k in range(max(k0, 1)):
            recs = lanes.get(k, [])
            who = _optional(recs[0][annotator_col]) if recs else None
            tier_id = base if k == 0 else f"{base} #{k + 1}"
            attrs = {"LINGUISTIC_TYPE_REF": tier_type, "TIER_ID": tier_id}
            if who is not None:
                attrs["ANNOTATOR"] = who
            tier = etree.Element("TIER", attrs)
            children = {kind: etree.Element("TIER", {
                "LINGUISTIC_TYPE_REF": _MODIFIER_TYPES[kind], "PARENT_REF": tier_id,
                "TIER_ID": f"{tier_id} - {kind}", **({"ANNOTATOR": who} if who is not None else {})})
                for kind in (MODIFIER_KINDS.values() if with_modifiers else ())}
            for rec in recs:
                ann_id = w.annotation_id()
                start_ms = frame_to_ms(int(rec["start_frame"]), fps)
                end_ms = frame_to_ms(int(rec["end_frame"]), fps)
                ann = etree.SubElement(etree.SubElement(tier, "ANNOTATION"), "ALIGNABLE_ANNOTATION", {
                    "ANNOTATION_ID": ann_id, "CVE_REF": cve_ids[_LABEL_CV][rec["label"]],
                    "TIME_SLOT_REF1": f"__slot{w.slot(start_ms)}", "TIME_SLOT_REF2": f"__slot{w.slot(end_ms)}"})
                etree.SubElement(ann, "ANNOTATION_VALUE").text = rec["label"]
                for col, kind in MODIFIER_KINDS.items():
                    value = _optional(rec.get(col))
                    if value is None or kind not in children:
                        continue
                    ref = etree.SubElement(etree.SubElement(children[kind], "ANNOTATION"), "REF_ANNOTATION", {
                        "ANNOTATION_ID": w.annotation_id(), "ANNOTATION_REF": ann_id,
                        "CVE_REF": cve_ids[kind][value]})
                    etree.SubElement(ref, "ANNOTATION_VALUE").text = value
            tiers.append(tier)
            tiers.extend(children.values())

    mois = mois.sort_values(["start_frame", "end_frame"], kind="stable")
    by_region = {region: part for region, part in mois.groupby("region", sort=False)}
    for region in regions:
        part = by_region.get(region, mois.iloc[:0])
        add_group(part, region, MOI_TYPE, "author", True)
    if suggestions is not None and len(suggestions):
        sug = suggestions.copy()
        if "model_version" not in sug:
            sug["model_version"] = None
        sug = sug.sort_values(["start_frame", "end_frame"], kind="stable")
        for region, part in sug.groupby("region", sort=False):
            add_group(part, f"{region} (suggested)", SUGGESTION_TYPE, "model_version", False)

    # time slots in time order, numbered ts1.. in that order; then the annotations' references
    order = sorted(range(len(w.slots)), key=lambda i: w.slots[i])
    slot_name = {}
    for n, i in enumerate(order, start=1):
        slot_name[f"__slot{i}"] = f"ts{n}"
        etree.SubElement(time_order, "TIME_SLOT", TIME_SLOT_ID=f"ts{n}", TIME_VALUE=str(w.slots[i][0]))
    for tier in tiers:
        for ann in tier.iter("ALIGNABLE_ANNOTATION"):
            ann.set("TIME_SLOT_REF1", slot_name[ann.get("TIME_SLOT_REF1")])
            ann.set("TIME_SLOT_REF2", slot_name[ann.get("TIME_SLOT_REF2")])
    props["lastUsedAnnotationId"] = str(w.next_annotation)
    for name, value in props.items():
        etree.SubElement(header, "PROPERTY", NAME=name).text = value
    root.extend(tiers)

    etree.SubElement(root, "LINGUISTIC_TYPE", CONTROLLED_VOCABULARY_REF=_LABEL_CV, GRAPHIC_REFERENCES="false",
                     LINGUISTIC_TYPE_ID=MOI_TYPE, TIME_ALIGNABLE="true")
    for kind, lt in _MODIFIER_TYPES.items():
        etree.SubElement(root, "LINGUISTIC_TYPE", CONSTRAINTS="Symbolic_Association",
                         CONTROLLED_VOCABULARY_REF=kind, GRAPHIC_REFERENCES="false",
                         LINGUISTIC_TYPE_ID=lt, TIME_ALIGNABLE="false")
    if suggestions is not None and len(suggestions):
        etree.SubElement(root, "LINGUISTIC_TYPE", CONTROLLED_VOCABULARY_REF=_LABEL_CV,
                         GRAPHIC_REFERENCES="false", LINGUISTIC_TYPE_ID=SUGGESTION_TYPE, TIME_ALIGNABLE="true")
    etree.SubElement(root, "LANGUAGE", LANG_DEF=_LANG_DEF, LANG_ID=_LANG, LANG_LABEL="English (eng)")
    for stereotype, description in _CONSTRAINTS.items():
        etree.SubElement(root, "CONSTRAINT", DESCRIPTION=description, STEREOTYPE=stereotype)
    cvs = [(_LABEL_CV, "Movement-of-interest labels (DeepEpil vocabulary)", labels)]
    cvs += [(kind, f"MOI {kind} (DeepEpil vocabulary)", values) for kind, values in modifiers.items()]
    for cv_id, description, values in cvs:
        cv = etree.SubElement(root, "CONTROLLED_VOCABULARY", CV_ID=cv_id)
        etree.SubElement(cv, "DESCRIPTION", LANG_REF=_LANG).text = description
        for value in values:
            entry = etree.SubElement(cv, "CV_ENTRY_ML", CVE_ID=cve_ids[cv_id][value])
            etree.SubElement(entry, "CVE_VALUE", LANG_REF=_LANG).text = value

    tmp = path.with_name(path.name + ".tmp")
    etree.ElementTree(root).write(str(tmp), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    os.replace(tmp, path)
    return path


# --- reading -------------------------------------------------------------------------------


def _where(line: Optional[int], annotation_id: Optional[str] = None, tier: Optional[str] = None) -> str:
    parts = []
    if line is not None:
        parts.append(f"line {line}")
    if annotation_id:
        parts.append(f"annotation {annotation_id}")
    if tier is not None:
        parts.append(f"tier {tier!r}")
    return ", ".join(parts)


def _parse(path: str | os.PathLike, problems: Problems) -> Optional[etree._ElementTree]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.parse(os.fspath(path), parser)
    except etree.XMLSyntaxError as exc:
        entries = [e for e in exc.error_log if e.level_name in ("ERROR", "FATAL")] or []
        if not entries:
            problems.add(f"line {exc.lineno}" if exc.lineno else "", f"malformed XML: {exc.msg}", line=exc.lineno)
        for e in entries:
            problems.add(f"line {e.line}, column {e.column}", f"malformed XML: {e.message}", line=e.line)
        return None


def read_eaf(
    path: str | os.PathLike,
    *,
    fps: float,
    num_frames: int,
    vocabulary: Vocabulary,
) -> pd.DataFrame:
    """Read and check the MOIs of an ELAN file; raise :class:`ImportFileError` listing every problem.

    Nothing is written anywhere: this is the checking half of :func:`import_eaf`.

    Parameters
    ----------
    path : path-like
        An ``.eaf`` file (EAF 2.7 to 3.0, times in milliseconds).
    fps, num_frames : float, int
        The recording the MOIs belong to: milliseconds become frames with
        ``frame = floor(ms * fps / 1000 + 0.5)``; MOIs must lie in ``[0, num_frames]``.
    vocabulary : deepepil.labels._validate.Vocabulary
        The valid regions, labels, lateralities and centricities.

    Returns
    -------
    pandas.DataFrame
        One row per MOI with :data:`READ_COLUMNS`, in file order.

    Raises
    ------
    ImportFileError
        Malformed XML, time units other than milliseconds, an annotation on a tier that is
        not a region, an unknown label or modifier, a reversed, sub-frame or out-of-range
        interval, an unaligned time slot, an exact duplicate: every one, with its line
        number and annotation id.
    """
    fps = check_fps(fps)
    problems = Problems(path)
    tree = _parse(path, problems)
    if tree is None:
        problems.raise_if_any()
    root = tree.getroot()
    if root.tag != "ANNOTATION_DOCUMENT":
        problems.add(_where(root.sourceline), f"not an ELAN file: the root element is <{root.tag}>, "
                                              f"expected <ANNOTATION_DOCUMENT>", line=root.sourceline)
        problems.raise_if_any()

    header = root.find("HEADER")
    if header is not None:
        units = header.get("TIME_UNITS", "milliseconds")
        if units != "milliseconds":
            problems.add(_where(header.sourceline), f"TIME_UNITS is {units!r}; only 'milliseconds' is supported "
                                                    f"(in ELAN: save the file again, it writes milliseconds)",
                         line=header.sourceline)
        for media in header.findall("MEDIA_DESCRIPTOR"):
            origin = media.get("TIME_ORIGIN")
            if origin not in (None, "", "0"):
                problems.add(_where(media.sourceline), f"the media has a time origin of {origin} ms; "
                                                       f"remove the media offset in ELAN before exporting",
                             line=media.sourceline)

    slots: dict[str, Optional[int]] = {}
    bad_slots: set[str] = set()
    for slot in root.iterfind("TIME_ORDER/TIME_SLOT"):
        sid, value = slot.get("TIME_SLOT_ID"), slot.get("TIME_VALUE")
        if sid in slots:
            problems.add(_where(slot.sourceline), f"time slot {sid!r} is defined twice", line=slot.sourceline)
        try:
            slots[sid] = None if value is None else int(value)
        except ValueError:
            problems.add(_where(slot.sourceline), f"time slot {sid!r} has TIME_VALUE {value!r}, "
                                                  f"not a whole number of milliseconds", line=slot.sourceline)
            slots[sid] = None
            bad_slots.add(sid)

    ling_cv = {lt.get("LINGUISTIC_TYPE_ID"): lt.get("CONTROLLED_VOCABULARY_REF")
               for lt in root.iterfind("LINGUISTIC_TYPE")}
    tier_types = {t.get("TIER_ID"): t.get("LINGUISTIC_TYPE_REF") for t in root.iterfind("TIER")}
    known_regions = set(vocabulary.codes("region")) | set(vocabulary.retired.get("region", {}))
    region_list = ", ".join(map(repr, vocabulary.codes("region")))

    rows: list[dict[str, Any]] = []
    by_annotation: dict[str, dict[str, Any]] = {}
    modifiers: list[tuple[str, str, str, int, str]] = []  # (kind, parent tier, ANNOTATION_REF, line, value)

    def time_of(ann: etree._Element, attr: str, where: str) -> Optional[int]:
        ref = ann.get(attr)
        if ref not in slots:
            problems.add(where, f"{attr} {ref!r} names no time slot of TIME_ORDER", line=ann.sourceline)
            return None
        if ref in bad_slots:
            return None
        if slots[ref] is None:
            problems.add(where, f"time slot {ref!r} has no time (an unaligned slot); align the annotation in ELAN",
                         line=ann.sourceline)
        return slots[ref]

    for tier in root.iterfind("TIER"):
        tier_id = tier.get("TIER_ID") or ""
        tier_type = tier.get("LINGUISTIC_TYPE_REF")
        parent = tier.get("PARENT_REF")
        annotations = tier.findall("ANNOTATION/*")
        if tier_type == SUGGESTION_TYPE or (parent is not None and tier_types.get(parent) == SUGGESTION_TYPE):
            continue  # model suggestions are exported for viewing only
        if parent is not None:
            kind = ling_cv.get(tier_type)
            if kind not in MODIFIER_KINDS.values():
                kind = next((k for k in MODIFIER_KINDS.values() if tier_id.endswith(f" - {k}")), None)
            if kind is None:
                if annotations:
                    problems.add(_where(tier.sourceline, tier=tier_id),
                                 f"a child tier that is neither '<tier> - laterality' nor '<tier> - centricity' "
                                 f"(its linguistic type has no 'laterality' or 'centricity' vocabulary); "
                                 f"remove it or move its {len(annotations)} annotation(s)", line=tier.sourceline)
                continue
            for ann in annotations:
                ann_id = ann.get("ANNOTATION_ID")
                where = _where(ann.sourceline, ann_id, tier_id)
                if ann.tag != "REF_ANNOTATION":
                    problems.add(where, f"a {kind} tier holds reference annotations (one per MOI above it), "
                                        f"not time-aligned ones", line=ann.sourceline)
                    continue
                value = (ann.findtext("ANNOTATION_VALUE") or "").strip()
                modifiers.append((kind, parent, ann.get("ANNOTATION_REF") or "", ann.sourceline, value))
            continue

        match = _LANE_RE.match(tier_id)
        region = match.group("base") if match and match.group("base") in known_regions else tier_id
        region_ok = region in known_regions
        if not region_ok:
            if not annotations:
                continue  # an empty tier that is no region (pympi's 'default', a notes tier): nothing to import
            problems.add(_where(tier.sourceline, tier=tier_id),
                         f"tier {tier_id!r} is not a region, so its {len(annotations)} annotation(s) cannot be "
                         f"imported; name MOI tiers after a region ({region_list}), optionally with a "
                         f"lane suffix ' #2'", line=tier.sourceline)
        else:
            problems.check(_where(tier.sourceline, tier=tier_id), vocabulary.check, "region", region, "region",
                           line=tier.sourceline)
        for ann in annotations:
            ann_id = ann.get("ANNOTATION_ID")
            where = _where(ann.sourceline, ann_id, tier_id)
            if ann.tag != "ALIGNABLE_ANNOTATION":
                problems.add(where, "MOI tiers hold time-aligned annotations; this is a reference annotation",
                             line=ann.sourceline)
                continue
            value = (ann.findtext("ANNOTATION_VALUE") or "").strip()
            laterality = None
            label: Optional[str] = value
            if not value:
                problems.add(where, "empty annotation: the value must be an MOI label", line=ann.sourceline)
                label = None
            elif value not in vocabulary.codes("moi_label"):
                split = _LATERALITY_IN_VALUE.match(value)
                if split and split.group("label") in vocabulary.codes("moi_label"):
                    label, laterality = split.group("label"), split.group("laterality").strip()
                    laterality = problems.check(where, vocabulary.check, "laterality", laterality, "laterality",
                                                line=ann.sourceline)
                else:
                    label = problems.check(where, vocabulary.check, "moi_label", value, "label",
                                           line=ann.sourceline)
            start_ms = time_of(ann, "TIME_SLOT_REF1", where)
            end_ms = time_of(ann, "TIME_SLOT_REF2", where)
            start_frame = end_frame = None
            if start_ms is not None and end_ms is not None:
                start_frame, end_frame = ms_to_frame(start_ms, fps), ms_to_frame(end_ms, fps)
                duration_ms = frame_to_ms(num_frames, fps)
                if end_ms <= start_ms:
                    problems.add(where, f"ends at {end_ms} ms, not after its start at {start_ms} ms "
                                        f"(reversed or empty)", line=ann.sourceline)
                elif end_frame <= start_frame:
                    problems.add(where, f"{start_ms}-{end_ms} ms is shorter than one frame at {fps:g} fps "
                                        f"(both ends round to frame {start_frame})", line=ann.sourceline)
                elif start_frame < 0 or end_frame > num_frames:
                    problems.add(where, f"{start_ms}-{end_ms} ms (frames {start_frame}-{end_frame}) is outside the "
                                        f"recording, which has {num_frames} frames ({duration_ms} ms at {fps:g} fps)",
                                 line=ann.sourceline)
            row = {
                "region": region if region_ok else None, "label": label, "laterality": laterality,
                "centricity": None, "start_frame": start_frame, "end_frame": end_frame,
                "start_ms": start_ms, "end_ms": end_ms, "annotator": tier.get("ANNOTATOR"), "tier": tier_id,
                "annotation_id": ann_id, "line": ann.sourceline,
            }
            rows.append(row)
            if ann_id:
                if ann_id in by_annotation:
                    problems.add(where, f"annotation id {ann_id!r} is used twice", line=ann.sourceline)
                by_annotation[ann_id] = row

    seen_modifier: set[tuple[str, str]] = set()
    for kind, parent, ref, line, value in modifiers:
        where = _where(line, None, f"{parent} - {kind}")
        row = by_annotation.get(ref)
        if row is None or row["tier"] != parent:
            problems.add(where, f"ANNOTATION_REF {ref!r} names no MOI annotation of tier {parent!r}", line=line)
            continue
        if (kind, ref) in seen_modifier:
            problems.add(where, f"MOI {ref} has two {kind} annotations", line=line)
            continue
        seen_modifier.add((kind, ref))
        if not value:
            continue
        checked = problems.check(where, vocabulary.check, kind, value, kind, line=line)
        if checked is None:
            continue
        if row[kind] is not None and row[kind] != checked:
            problems.add(where, f"MOI {ref} says {kind} {row[kind]!r} in its value and {checked!r} in this tier",
                         line=line)
            continue
        row[kind] = checked

    seen: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if row["region"] is None or row["label"] is None or row["start_frame"] is None:
            continue
        key = (row["region"], row["label"], row["laterality"], row["start_frame"], row["end_frame"])
        first = seen.setdefault(key, row)
        if first is not row:
            hint = ""
            if first["annotator"] != row["annotator"]:
                hint = (f"; they are by different annotators ({first['annotator']!r}, {row['annotator']!r}), but "
                        f"imported MOIs are all the importing user's: import one annotator's file "
                        f"(export_eaf(..., author=NAME))")
            problems.add(_where(row["line"], row["annotation_id"], row["tier"]),
                         f"exact duplicate of annotation {first['annotation_id']} (line {first['line']}): "
                         f"same region, label, laterality and frames {row['start_frame']}-{row['end_frame']}{hint}",
                         line=row["line"])

    problems.raise_if_any()
    df = pd.DataFrame(rows, columns=list(READ_COLUMNS))
    for col in ("start_frame", "end_frame", "start_ms", "end_ms", "line"):
        df[col] = df[col].astype("int64")
    return df


# --- the store ------------------------------------------------------------------------------


def export_eaf(store: Any, recording_id: int, path: str | os.PathLike, *, author: Optional[str] = None,
               include_suggestions: bool = False) -> Path:
    """Write the live MOIs of a recording to an ELAN ``.eaf`` file; return its path.

    Parameters
    ----------
    store : deepepil.labels.LabelStore
        A connected label store.
    recording_id : int
        The recording.
    path : path-like
        The file to write.
    author : str, optional
        Export only this annotator's MOIs (default: every annotator's, each on their own tiers).
    include_suggestions : bool
        Also write the pending model suggestions, on ``"<region> (suggested)"`` tiers (import skips them).
    """
    rec = recording_info(store, recording_id)
    mois = moi_frame(store, rec.id, author=author)
    suggestions = None
    if include_suggestions:
        suggestions = store.suggestions(recording_id=rec.id, decision="pending")
    return write_eaf(mois, path, recording_name=rec.name, fps=rec.fps, vocabulary=store_vocabulary(store),
                     author=author or store.user.username, recording_id=rec.id, num_frames=rec.num_frames,
                     suggestions=suggestions)


def import_eaf(store: Any, path: str | os.PathLike, recording_id: int, *, dry_run: bool = False) -> list[int]:
    """Add the MOIs of an ELAN file to a recording, all or nothing; return the new MOI ids in file order.

    The whole file is read and checked first (:func:`read_eaf`), including against the MOIs
    the connected user already has on the recording; any problem raises
    :class:`~deepepil.errors.ImportFileError` listing all of them, and nothing is written.
    Then every MOI is added in one transaction of the label service. The author of the new
    MOIs is the connected user (the file's ``ANNOTATOR`` is not trusted).

    Parameters
    ----------
    dry_run : bool
        Check only; return an empty list.

    Raises
    ------
    ImportFileError
        The file has problems (all listed); nothing was imported.
    AccessDeniedError
        The user may not add MOIs to this recording (checked before the file is read).
    NotFoundError
        No such recording, or not visible to the user.
    """
    rec = recording_info(store, recording_id)
    check_may_import(store, rec)
    df = read_eaf(path, fps=rec.fps, num_frames=rec.num_frames, vocabulary=store_vocabulary(store))
    rows = [
        {"recording_id": rec.id, "region": r["region"], "label": r["label"], "laterality": r["laterality"],
         "centricity": r["centricity"], "start_frame": int(r["start_frame"]), "end_frame": int(r["end_frame"])}
        for r in df.to_dict("records")
    ]
    wheres = [(_where(int(r["line"]), r["annotation_id"], r["tier"]), int(r["line"])) for r in df.to_dict("records")]
    problems = Problems(path)
    existing_duplicates(store, rows, problems, wheres)
    problems.raise_if_any()
    if dry_run:
        return []
    return write_rows(store, rows, problems, wheres)

