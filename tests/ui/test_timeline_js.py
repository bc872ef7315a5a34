"""The timeline's pure logic (widgets/labeler/20_timeline.js), run in node: visible windows,
lane stacking, zoom and ruler maths, drag results, snapping, label filtering, time format.

The drawing and the pointer handling are exercised in a real browser (tests/browser); these
tests pin down the arithmetic they rely on. Skipped when node is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

LABELER = Path(__file__).resolve().parents[2] / "widgets" / "labeler"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run_js(body: str) -> object:
    """Evaluate 00_util.js and 20_timeline.js (in bundle order), then ``body``; return its JSON result."""
    files = [LABELER / "00_util.js", LABELER / "20_timeline.js"]
    script = (
        "const fs = require('fs'); const vm = require('vm');\n"
        f"for (const f of {json.dumps([str(f) for f in files])}) vm.runInThisContext(fs.readFileSync(f, 'utf8'), f);\n"
        f"const result = (() => {{ {body} }})();\n"
        "process.stdout.write(JSON.stringify(result));\n"
    )
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


RANDOM_ROWS = """
let seed = 7;
const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const rows = [];
for (let i = 0; i < 1500; i++) {
  const start = Math.floor(rnd() * 36000);
  const long = rnd() < 0.02;
  rows.push({id: i, start_frame: start, end_frame: start + 1 + Math.floor(rnd() * (long ? 9000 : 300))});
}
"""


def test_window_finds_exactly_the_rows_overlapping_the_view():
    # Long rows that start far before the window must still be found (the running max of ends).
    bad = run_js(RANDOM_ROWS + """
      const group = timelineGroup(rows, 3);
      const bad = [];
      for (let k = 0; k < 300; k++) {
        const from = Math.floor(rnd() * 36000), to = from + 1 + Math.floor(rnd() * 5000);
        const [lo, hi] = timelineWindow(group, from, to);
        const got = [];
        for (let i = lo; i < hi; i++) if (group.items[i].end_frame > from) got.push(group.items[i].id);
        const want = rows.filter(r => r.start_frame < to && r.end_frame > from).map(r => r.id);
        if (got.sort().join() !== want.sort().join()) bad.push([from, to, got.length, want.length]);
      }
      return bad;
    """)
    assert bad == []


def test_lanes_never_overlap_below_the_cap_and_count_the_overlap_depth():
    out = run_js("""
      const rows = [[0, 10], [5, 15], [8, 20], [10, 12], [20, 30], [25, 26]]
        .map(([s, e], id) => ({id, start_frame: s, end_frame: e}));
      const g = timelineGroup(rows, 4);
      const clash = [];
      for (let i = 0; i < g.items.length; i++) for (let j = 0; j < i; j++) {
        const a = g.items[i], b = g.items[j];
        if (g.lanes[i] === g.lanes[j] && a.start_frame < b.end_frame && b.start_frame < a.end_frame) clash.push([i, j]);
      }
      const capped = timelineGroup(rows, 2);
      return {clash, nLanes: g.nLanes, capped: capped.nLanes, maxLane: Math.max(...capped.lanes),
              empty: timelineGroup([], 3).nLanes};
    """)
    assert out["clash"] == []
    assert out["nLanes"] == 3  # [5,15), [8,20) and [0,10) overlap at frames 8-9
    assert out["capped"] == 2 and out["maxLane"] == 1
    assert out["empty"] == 1  # an empty track still has one lane to draw into


def test_tracks_follow_the_vocabulary_and_drop_decided_suggestions():
    out = run_js("""
      const mois = [{id: 1, region: "trunk", start_frame: 0, end_frame: 5},
                    {id: 2, region: "tail", start_frame: 3, end_frame: 9}];
      const sugg = [{id: 10, region: "head/face", start_frame: 0, end_frame: 4, decision: "pending"},
                    {id: 11, region: "head/face", start_frame: 5, end_frame: 8, decision: "accepted"},
                    {id: 12, region: "trunk", start_frame: 5, end_frame: 8, decision: "rejected"}];
      const tracks = timelineBuildTracks(["head/face", "trunk"], mois, sugg);
      const layout = timelineLayout(tracks);
      const probes = layout.tracks.map((t) => timelineTrackAt(layout, (t.top + t.bottom) / 2));
      return {regions: tracks.map(t => t.region), sugg: tracks.map(t => t.suggestions.items.map(s => s.id)),
              suggestRows: layout.tracks.map(t => t.suggestTop >= 0), probes,
              contiguous: layout.tracks.every((t, i) => i === 0 || t.top === layout.tracks[i - 1].bottom),
              above: timelineTrackAt(layout, layout.tracks[0].top - 1), below: timelineTrackAt(layout, layout.tracksBottom)};
    """)
    assert out["regions"] == ["head/face", "trunk", "tail"]  # a region only the rows name comes last
    assert out["sugg"] == [[10], [], []]
    assert out["suggestRows"] == [True, False, False]
    assert out["probes"] == [0, 1, 2] and out["contiguous"]
    assert out["above"] == -1 and out["below"] == -1


def test_view_is_clamped_to_the_recording_and_the_zoom_range():
    out = run_js("""
      const n = 36000, w = 1200;
      return {
        tooFar: timelineClampView({startFrame: 1e9, pxPerFrame: 1}, n, w),
        tooWide: timelineClampView({startFrame: 500, pxPerFrame: 0.0001}, n, w),
        tooDeep: timelineClampView({startFrame: 10, pxPerFrame: 1e6}, n, w),
        negative: timelineClampView({startFrame: -50, pxPerFrame: 2}, n, w),
        max: TIMELINE_MAX_PX_PER_FRAME,
      };
    """)
    assert out["tooFar"] == {"startFrame": 36000 - 1200, "pxPerFrame": 1}
    assert out["tooWide"] == {"startFrame": 0, "pxPerFrame": 1200 / 36000}  # whole recording, no more
    assert out["tooDeep"]["pxPerFrame"] == out["max"]
    assert out["negative"]["startFrame"] == 0


def test_zoom_keeps_the_frame_under_the_pointer():
    out = run_js("""
      const view = {startFrame: 10000, pxPerFrame: 0.5};
      const anchorFrame = 10000 + 300 / 0.5;
      const zoomed = timelineZoomAt(view, 3, anchorFrame, 300, 36000, 1200);
      const back = timelineZoomAt(zoomed, 1 / 3, anchorFrame, 300, 36000, 1200);
      const fit = timelineViewFor(1000, 1100, 36000, 1200);
      return {zoomed, under: zoomed.startFrame + 300 / zoomed.pxPerFrame, anchorFrame, back,
              fitStart: fit.startFrame, fitEnd: fit.startFrame + 1200 / fit.pxPerFrame};
    """)
    assert out["zoomed"]["pxPerFrame"] == pytest.approx(1.5)
    assert out["under"] == pytest.approx(out["anchorFrame"])
    assert out["back"]["startFrame"] == pytest.approx(10000) and out["back"]["pxPerFrame"] == pytest.approx(0.5)
    assert out["fitStart"] < 1000 and out["fitEnd"] > 1100  # the selection with a margin on both sides
    assert out["fitEnd"] - out["fitStart"] == pytest.approx(120)


def test_ruler_ticks_adapt_to_the_zoom():
    out = run_js("""
      const res = {};
      for (const px of [1200 / 36000, 0.5, 4, 40]) res[px] = timelineTickStep(px, 30);
      res.ntsc = timelineTickStep(1200 / 36000, 29.97);
      return res;
    """)
    whole = out[str(1200 / 36000)]
    assert whole["majorFrames"] * 1200 / 36000 >= 78 and not whole["withFrames"]
    assert whole["majorFrames"] % 30 == 0 and whole["majorFrames"] >= 60 * 30  # minutes on a 20-minute view
    for px in ("0.5", "4", "40"):
        step = out[px]
        assert step["majorFrames"] * float(px) >= 78  # labels never crowd
        assert step["majorFrames"] % step["minorFrames"] == 0
    assert out["40"]["withFrames"] and out["40"]["majorFrames"] < 30  # frame steps when zoomed right in
    assert out["ntsc"]["majorFrames"] == pytest.approx(29.97 * 60 * 2)


def test_drag_results_keep_length_and_stay_inside_the_recording():
    out = run_js("""
      return [
        timelineDragResult("move", 100, 150, 30.4, 1000),
        timelineDragResult("move", 100, 150, -500, 1000),
        timelineDragResult("move", 100, 150, 5000, 1000),
        timelineDragResult("start", 100, 150, 80, 1000),
        timelineDragResult("start", 100, 150, -200, 1000),
        timelineDragResult("end", 100, 150, -90, 1000),
        timelineDragResult("end", 100, 150, 2000, 1000),
      ];
    """)
    assert out == [
        {"start_frame": 130, "end_frame": 180},  # whole frames
        {"start_frame": 0, "end_frame": 50},
        {"start_frame": 950, "end_frame": 1000},  # half-open: the last frame is 999
        {"start_frame": 149, "end_frame": 150},  # never shorter than one frame
        {"start_frame": 0, "end_frame": 150},
        {"start_frame": 100, "end_frame": 101},
        {"start_frame": 100, "end_frame": 1000},
    ]


def test_snap_goes_to_the_nearest_target_within_tolerance_only():
    out = run_js("""
      return [timelineSnap(103, [100, 110, 200], 5), timelineSnap(106, [100, 110], 5),
              timelineSnap(150, [100, 200], 5), timelineSnap(150, [], 5)];
    """)
    assert out == [100, 110, 150, 150]


def test_label_filter_ranks_prefix_then_word_start_then_substring():
    out = run_js("""
      const labels = ["head version", "tonic-clonic phase", "clonic", "myoclonic", "oral automatism"];
      const vocab = {labels: {trunk: ["clonic"], "head/face": []}};
      return {clo: timelineFilterLabels(labels, "clo"), none: timelineFilterLabels(labels, "xyz"),
              all: timelineFilterLabels(labels, "  "), ver: timelineFilterLabels(labels, "VER"),
              trunk: timelineLabelsFor(vocab, "trunk"), emptyRegion: timelineLabelsFor(vocab, "head/face"),
              flat: timelineLabelsFor({labels: ["a", "b"]}, "trunk"),
              lat: [timelineDefaultLaterality("left upper limb", ["left", "right", "bilateral"]),
                    timelineDefaultLaterality("right lower limb", ["left", "right", "bilateral"]),
                    timelineDefaultLaterality("trunk", ["left", "right", "bilateral"], "bilateral")]};
    """)
    assert out["clo"] == ["clonic", "tonic-clonic phase", "myoclonic"]
    assert out["none"] == []
    assert out["all"] == ["head version", "tonic-clonic phase", "clonic", "myoclonic", "oral automatism"]
    assert out["ver"] == ["head version"]
    assert out["trunk"] == ["clonic"]
    assert out["emptyRegion"] == ["clonic"]  # a region without its own list offers every label
    assert out["flat"] == ["a", "b"]
    assert out["lat"] == ["left", "right", "bilateral"]


def test_time_format_matches_the_app_wide_format():
    frames = [0, 29, 30, 1799, 36000 - 1, 36000, 30 * 3600 + 45]
    out = run_js(f"return {frames}.map(f => [timelineFormatTime(f, 30), timelineFormatTime(f, 30, false)]);")
    shared = run_js(f"return {frames}.map(f => utilFormatTime(f, 30));")
    assert out == [
        ["00:00.00", "00:00"], ["00:00.29", "00:00"], ["00:01.00", "00:01"], ["00:59.29", "00:59"],
        ["19:59.29", "19:59"], ["20:00.00", "20:00"], ["1:00:01.15", "1:00:01"],
    ]
    assert shared == [pair[0] for pair in out]  # the same text as utilFormatTime in 00_util.js


def test_badges_and_initials():
    out = run_js("""
      return [timelineLateralityBadge("left"), timelineLateralityBadge("bilateral"), timelineLateralityBadge(null),
              timelineInitials("anna.berg"), timelineInitials("dr_lee"), timelineInitials("clin1"), timelineInitials(null)];
    """)
    assert out == ["L", "B", "", "AB", "DL", "CL", ""]


def test_top_level_names_carry_the_timeline_prefix():
    # The labeler's module is the concatenation of its files: top-level names must not collide.
    source = (LABELER / "20_timeline.js").read_text(encoding="utf-8")
    names = re.findall(r"^(?:async\s+)?(?:function\*?|const|let|var|class)\s+([A-Za-z_$][\w$]*)", source, re.M)
    assert names, "no top-level declarations found"
    wrong = [n for n in names if not (n.startswith(("timeline", "TIMELINE_")) or n == "createTimeline")]
    assert wrong == []
    assert not re.search(r"^\s*(?:import|export)\b", source, re.M)
