"""The labeler's frame without a browser: 00_util.js helpers and 90_main.js's context, run in node.

The browser-side behaviour (screens, keyboard in JupyterLab) is tested in tests/browser/; these
check the logic every part relies on: time formatting, key names, the request/reply plumbing and
how replies' ``changes`` reach ``ctx.labels``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

LABELER = Path(__file__).resolve().parents[2] / "widgets" / "labeler"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run widgets/labeler/*.js")


def run_js(body: str) -> object:
    """Run ``body`` after 00_util.js and 90_main.js (its export made a constant); return what it prints as JSON."""
    main = (LABELER / "90_main.js").read_text(encoding="utf-8").replace("export default", "const mainModule =")
    script = "\n".join([(LABELER / "00_util.js").read_text(encoding="utf-8"), main,
                        "const out = (value) => process.stdout.write(JSON.stringify(value));",
                        f"(async () => {{ {body} }})().catch((err) => {{ console.error(err); process.exit(1); }});"])
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


FAKE_MODEL = """
function fakeModel(traits = {}) {
  const listeners = {};
  const sent = [];
  return {
    sent, traits,
    get: (k) => traits[k],
    set: (k, v) => { traits[k] = v; },
    save_changes() {},
    on(ev, fn) { (listeners[ev] ||= new Set()).add(fn); },
    off(ev, fn) { listeners[ev] && listeners[ev].delete(fn); },
    send(content) { sent.push(content); },
    reply(content) { for (const fn of listeners["msg:custom"] || []) fn(content, []); },
    count() { return Object.values(listeners).reduce((n, s) => n + s.size, 0); },
  };
}
"""


def test_format_time():
    got = run_js("""out([utilFormatTime(0, 30), utilFormatTime(95, 30), utilFormatTime(30 * 61 + 29, 30),
        utilFormatTime(30 * 3600, 30), utilFormatTime(30 * 3725 + 7, 30), utilFormatTime(-31, 30),
        utilFormatTime(null, 30), utilFormatTime(150, 120), utilFormatTime(2997, 29.97)]);""")
    assert got == ["00:00.00", "00:03.05", "01:01.29", "1:00:00.00", "1:02:05.07", "-00:01.01", "--:--.--",
                   "00:01.030", "01:40.00"]


def test_parse_time_round_trips_and_explains_bad_input():
    got = run_js("""
      const frames = [0, 1, 95, 1829, 108000, 111757];
      const back = frames.map((f) => utilParseTime(utilFormatTime(f, 30), 30));
      let message = "";
      try { utilParseTime("1:75.00", 30); } catch (err) { message = err.message; }
      let frameMessage = "";
      try { utilParseTime("00:01.31", 30); } catch (err) { frameMessage = err.message; }
      out({back, hash: utilParseTime("#42", 30), seconds: utilParseTime("12", 30), message, frameMessage});""")
    assert got["back"] == [0, 1, 95, 1829, 108000, 111757]
    assert got["hash"] == 42 and got["seconds"] == 360
    assert "seconds must be below 60" in got["message"]
    assert "below 30" in got["frameMessage"]


def test_key_names():
    got = run_js("""out([
      {key: " "}, {key: "ArrowLeft"}, {key: "ArrowRight", shiftKey: true}, {key: "Z", ctrlKey: true, shiftKey: true},
      {key: "z", metaKey: true}, {key: "I", shiftKey: true}, {key: "?", shiftKey: true}, {key: "+", shiftKey: true},
      {key: "Shift", shiftKey: true}, {key: "Dead"}, {key: "å", altKey: true, code: "KeyA"}, {key: "Esc"},
    ].map(utilKeyName));""")
    assert got == ["Space", "ArrowLeft", "Shift+ArrowRight", "Ctrl+Shift+z", "Ctrl+z", "Shift+i", "?", "+", "", "",
                   "Alt+a", "Escape"]


def test_region_colours_are_distinct_for_the_vocabulary_and_stable_otherwise():
    got = run_js("""
      const regions = ["head/face", "trunk", "left upper limb", "right upper limb", "left lower limb",
                       "right lower limb", "whole body"];
      utilSetRegionOrder(regions);
      const colours = regions.map(utilRegionColor);
      out({colours, unknown: [utilRegionColor("tail"), utilRegionColor("tail")], palette: UTIL_PALETTE});""")
    assert len(set(got["colours"])) == 7
    assert got["unknown"][0] == got["unknown"][1] and got["unknown"][0] in got["palette"]


def test_emitter_keeps_going_when_a_listener_throws():
    got = run_js("""
      const bus = utilEmitter(); const seen = [];
      const off = bus.on("x", (p) => seen.push(["a", p]));
      bus.on("x", () => { throw new Error("boom"); });
      bus.on("x", (p) => seen.push(["c", p]));
      const log = console.error; console.error = () => {};
      bus.emit("x", 1); off(); bus.emit("x", 2);
      console.error = log;
      out(seen);""")
    assert got == [["a", 1], ["c", 1], ["c", 2]]


def test_request_matches_replies_by_req_and_times_out_with_a_clear_error():
    got = run_js(FAKE_MODEL + """
      const model = fakeModel();
      const { ctx, dispose } = mainCreateContext(model);
      const first = ctx.request({type: "refresh"});
      const second = ctx.request({type: "refresh"});
      const [a, b] = model.sent;
      model.reply({type: "refreshed", req: b.req, ok: true, n: 2});
      model.reply({type: "refreshed", req: a.req, ok: true, n: 1});
      const replies = [(await first).content.n, (await second).content.n];
      let message = "";
      try { await ctx.request({type: "edit", op: "undo", args: {}}, [], {timeout_ms: 20}); }
      catch (err) { message = err.message; }
      const late = ctx.request({type: "refresh"});
      dispose();
      let closed = "";
      try { await late; } catch (err) { closed = err.message; }
      out({distinct: a.req !== b.req, replies, message, closed, listeners: model.count()});""")
    assert got["distinct"] and got["replies"] == [1, 2]
    assert 'No answer from the kernel to "edit" (undo) after 0 s' in got["message"]
    assert "kernel may be busy" in got["message"]
    assert "closed before the kernel answered" in got["closed"]
    assert got["listeners"] == 0


def test_edit_replies_update_the_labels_before_the_caller_sees_them():
    got = run_js(FAKE_MODEL + """
      const model = fakeModel();
      const { ctx } = mainCreateContext(model);
      const events = [];
      ctx.bus.on("labels", (e) => events.push(Object.keys(e.changes)));
      mainResetLabels(ctx, {mois: [{id: 1, version: 1, start_frame: 0, end_frame: 5}, {id: 2, version: 3}],
                            suggestions: [], seizures: []});
      ctx.select({kind: "moi", id: 2});
      const pending = ctx.edit("update_moi", {id: 1, version: 1, changes: {end_frame: 9}});
      const sent = model.sent[0];
      let heldAtReply = null;
      const result = pending.then((reply) => { heldAtReply = ctx.labels.mois.get(1).end_frame; return reply; });
      model.reply({type: "edit_result", req: sent.req, ok: true, error: null,
                   changes: {mois: [{id: 1, version: 2, start_frame: 0, end_frame: 9}], mois_removed: [2]}});
      await result;
      // a stale row (older version) from a crossing message is ignored
      model.reply({type: "labels_changed", changes: {mois: [{id: 1, version: 1, start_frame: 0, end_frame: 5}]}});
      out({sent: [sent.type, sent.op], heldAtReply, end: ctx.labels.mois.get(1).end_frame,
           has2: ctx.labels.mois.has(2), selection: ctx.state.selection, events});""")
    assert got["sent"] == ["edit", "update_moi"]
    assert got["heldAtReply"] == 9 and got["end"] == 9
    assert got["has2"] is False and got["selection"] is None, "a removed row is no longer selected"
    assert len(got["events"]) == 2


def test_errors_and_conflicts_of_edits_are_shown_by_main():
    got = run_js(FAKE_MODEL + """
      const model = fakeModel();
      const { ctx } = mainCreateContext(model);
      const shown = []; const conflicts = [];
      ctx.notify = (level, text) => shown.push([level, text]);
      ctx.bus.on("conflict", (c) => conflicts.push([c.request.op, c.error.current.version]));
      const a = ctx.edit("update_moi", {id: 1, version: 1, changes: {label: "clonic"}});
      model.reply({type: "edit_result", req: model.sent[0].req, ok: false, changes: null,
                   error: {kind: "conflict", message: "changed by bea", current: {id: 1, version: 4}}});
      const b = ctx.edit("delete_moi", {id: 1, version: 4});
      model.reply({type: "edit_result", req: model.sent[1].req, ok: false, changes: null,
                   error: {kind: "denied", message: "ann may not edit South's labels"}});
      model.reply({type: "notify", level: "warning", text: "kernel says hi"});
      await a; await b;
      out({shown, conflicts});""")
    assert got["conflicts"] == [["update_moi", 4]]
    assert got["shown"] == [["error", "ann may not edit South's labels"], ["warning", "kernel says hi"]]


def test_seek_clamps_to_the_recording_and_the_kernel_hears_the_frame():
    got = run_js(FAKE_MODEL + """
      const model = fakeModel();
      const { ctx, dispose } = mainCreateContext(model);
      ctx.state.recording = {n_frames: 100, fps: 30};
      const frames = [];
      ctx.bus.on("frame", (e) => frames.push([e.frame, e.source]));
      ctx.seek(-5); ctx.seek(42.6, "timeline"); ctx.seek(1e9);
      await new Promise((r) => setTimeout(r, 400));
      dispose();
      const keys = [...mainKeyMap({redo: ["Ctrl+Shift+z", "Ctrl+y"], help: "?", x: null})];
      out({frames, trait: model.traits.frame, keys});""")
    assert got["frames"] == [[0, "seek"], [43, "timeline"], [99, "seek"]]
    assert got["trait"] == 99
    assert got["keys"] == [["Ctrl+Shift+z", "redo"], ["Ctrl+y", "redo"], ["?", "help"]]
