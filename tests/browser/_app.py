"""Page object of the clinician labeling app (``deepepil.ui.LabelingApp``) in JupyterLab.

Every selector the browser tests and ``bench/bench_ui.py`` use lives here, taken from
``widgets/labeler/*.js``: the root ``.de-app`` (``data-screen``), the shell's landing table,
menu strip, status, side panel, dialogs and toasts (30_shell.js), the player's transport and its
counters ``window.__deepepil_player`` (10_player.js), the timeline canvas, its label chooser and
its hook ``window.__deepepil_timeline`` (20_timeline.js), the joints' overlays, markers and panel
(15_joints.js).
"""

from __future__ import annotations

import re
from typing import Any

from _lab import open_notebook, run_all_cells

ROOT = ".de-app"
LANDING_ROW = ".de-shell-landing tr.de-shell-row"
LOADING = ".de-shell-loading"
MENU_NAME = ".de-shell-menu-title .de-shell-strong"  # the recording's name: plain text
STATUS = ".de-shell-status"
PLAYER = ".de-player"
PLAYER_CLOCK = ".de-player-clock"
PLAYER_FRAME = ".de-player-frame"
PLAYER_PLAY = ".de-player-play"
PLAYER_START = ".de-player-start"
PLAYER_SCRUB = ".de-player-scrub"
PLAYER_RATE = ".de-player-rate"
PLAYER_STREAM_BUTTON = ".de-player-stream"  # data-view: all, ir, depth, rgb
BACK_TO_LIST = ".de-shell-menu button"  # the first one: "← Recordings"
CHOOSER = ".de-timeline-chooser"
CHOOSER_FILTER = ".de-timeline-chooser-filter"
CHOOSER_REGION = ".de-timeline-chooser-region"
CHOOSER_ITEM_ON = ".de-timeline-chooser-item--on"
FATAL = ".de-shell-fatal"
HELP = ".de-shell-help"
#: one action name inside the help overlay (its title is the action; the next sibling holds its keys)
HELP_ACTION = ".de-shell-k"
TOAST = ".de-shell-toast"
SIDE_PANELS = ".de-shell-side .de-shell-panel"
JOINTS_PANEL = ".de-joints-panel"
JOINTS_MODE = ".de-joints-mode"  # aria-pressed: joint mode on/off
JOINT_ITEM = ".de-joints-item"  # data-joint; --chosen
JOINTS_OVERLAY = "svg.de-joints-overlay"  # data-stream: ir, depth
JOINT_MARKER = "g.de-joints-marker"  # data-joint, data-keyframe ("1" solid, "0" interpolated), data-id


class LabelingAppPage:
    """The labeling app of one JupyterLab page."""

    def __init__(self, page: Any, timeout_ms: float = 60_000) -> None:
        self.page = page
        self.timeout_ms = timeout_ms
        self.root = page.locator(ROOT)

    # --- notebook --------------------------------------------------------------------------

    def start(self, notebook_path: str) -> None:
        """Open the prepared notebook, run it, and wait for the app's landing screen."""
        open_notebook(self.page, notebook_path)
        run_all_cells(self.page)
        self.wait_screen("landing")

    def wait_screen(self, name: str, timeout_ms: float | None = None) -> None:
        self.page.locator(f"{ROOT}[data-screen='{name}']").wait_for(state="visible",
                                                                     timeout=timeout_ms or self.timeout_ms)

    def screen(self) -> str | None:
        return self.root.get_attribute("data-screen")

    # --- landing -----------------------------------------------------------------------------

    def landing_rows(self) -> list[dict[str, str]]:
        """The landing table's rows: recording id, patient code, name, status text."""
        return self.page.locator(LANDING_ROW).evaluate_all(
            """rows => rows.map(r => ({id: r.dataset.recordingId, patient: r.cells[0].innerText.trim(),
                                      name: r.cells[1].innerText.trim(), mois: r.cells[5].innerText.trim(),
                                      status: r.cells[6].innerText.trim()}))"""
        )

    def open_recording(self, recording_id: int, timeout_ms: float = 180_000) -> dict[str, Any]:
        """Click the recording's row; wait for the labeling screen and a first IR frame on screen.

        Returns what the loading overlay showed meanwhile: ``{seen, messages, max_percent}``.
        """
        self.page.evaluate(
            """(sel) => {
                const el = document.querySelector(sel);
                const log = window.__bt_loading = {seen: false, messages: [], percents: []};
                const look = () => {
                    if (!el || el.hidden) return;
                    log.seen = true;
                    const msg = el.querySelector('.de-shell-loading-msg');
                    if (msg && !log.messages.includes(msg.textContent)) log.messages.push(msg.textContent);
                    const bar = el.querySelector('[role=progressbar]');
                    const v = bar && bar.getAttribute('aria-valuenow');
                    if (v !== null && v !== undefined) log.percents.push(Number(v));
                };
                if (el) new MutationObserver(look).observe(el, {attributes: true, childList: true, subtree: true,
                                                                 characterData: true});
            }""",
            LOADING,
        )
        self.page.locator(f"{LANDING_ROW}[data-recording-id='{recording_id}']").click()
        self.page.wait_for_function(
            """([root, fatal]) => document.querySelector(`${root}[data-screen='labeling']`)
                                   || document.querySelector(fatal)""",
            arg=[ROOT, FATAL], timeout=timeout_ms, polling=100)
        fatal = self.page.locator(FATAL)
        if fatal.count():
            raise AssertionError(f"the recording did not open: {fatal.inner_text()}")
        self.wait_screen("labeling", timeout_ms)
        self.wait_player_shows(0, timeout_ms=timeout_ms)
        self._watch_status()
        log = self.page.evaluate("() => window.__bt_loading")
        return {"seen": log["seen"], "messages": log["messages"], "max_percent": max(log["percents"], default=None)}

    # --- focus and keys ----------------------------------------------------------------------

    def focus(self) -> None:
        """Give the app the keyboard, as a user does: click a neutral spot (the recording's name in the menu strip)."""
        self.page.locator(MENU_NAME).click()
        self.page.wait_for_function(
            "(sel) => { const r = document.querySelector(sel); return r && r.contains(document.activeElement); }",
            arg=ROOT, timeout=self.timeout_ms)

    def press(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)

    # --- player ------------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """A copy of ``window.__deepepil_player`` (the player's counters)."""
        return self.page.evaluate(
            "() => { const c = window.__deepepil_player; return c ? JSON.parse(JSON.stringify(c)) : null; }")

    def frame(self) -> int:
        """The playhead frame, as the player's root element carries it."""
        return int(self.page.locator(PLAYER).get_attribute("data-frame"))

    def frame_label(self) -> tuple[str, int]:
        """The transport's time (``mm:ss.ff``) and frame number, as displayed."""
        clock = self.page.locator(PLAYER_CLOCK).inner_text().strip()
        text = self.page.locator(PLAYER_FRAME).inner_text()  # "· frame 12 / 180"
        match = re.search(r"\d+", text)
        assert match, f"no frame number in the transport's {text!r}"
        return clock, int(match.group())

    def wait_player_shows(self, frame: int, streams: tuple[str, ...] = ("ir",),
                          timeout_ms: float | None = None) -> None:
        """Wait until the playhead is ``frame`` and every one of ``streams`` shows it."""
        self.page.wait_for_function(
            """([frame, streams]) => { const c = window.__deepepil_player;
                   return c && c.frame === frame && streams.every(s => c.shown && c.shown[s] === frame); }""",
            arg=[frame, list(streams)], timeout=timeout_ms or self.timeout_ms, polling=50)

    def wait_playing(self, playing: bool) -> None:
        self.page.locator(f"{PLAYER}[data-playing='{str(playing).lower()}']").wait_for(timeout=self.timeout_ms)

    def set_view(self, view: str) -> None:
        """Show ``"all"`` streams or one (``"ir"``, ``"depth"``, ``"rgb"``) with the transport's buttons."""
        self.page.locator(f"{PLAYER_STREAM_BUTTON}[data-view='{view}']").click()
        self.page.locator(f"{PLAYER}[data-view='{view}']").wait_for(timeout=self.timeout_ms)

    def set_rate(self, rate: float) -> None:
        """Pick the playback speed in the transport's menu."""
        self.page.locator(PLAYER_RATE).select_option(f"{rate:g}")
        self.page.locator(f"{PLAYER}[data-rate='{rate:g}']").wait_for(timeout=self.timeout_ms)

    def go_start(self, streams: tuple[str, ...] = ("ir",)) -> None:
        """Click "go to start" and wait until ``streams`` show frame 0."""
        self.page.locator(PLAYER_START).click()
        self.wait_player_shows(0, streams)

    def back_to_list(self) -> None:
        """Close the recording with the menu strip's "← Recordings"; wait for the landing screen."""
        self.page.locator(BACK_TO_LIST).first.click()
        self.wait_screen("landing")

    def seek_by_keys_to(self, frame: int, fps: int) -> None:
        """Move the playhead to ``frame`` with Home, Shift+ArrowRight (1 s) and ArrowRight (1 frame)."""
        self.press("Home")
        self.press(*(["Shift+ArrowRight"] * (frame // fps)), *(["ArrowRight"] * (frame % fps)))
        self.page.wait_for_function("(f) => window.__deepepil_player && window.__deepepil_player.frame === f",
                                    arg=frame, timeout=self.timeout_ms)

    # --- timeline ----------------------------------------------------------------------------

    def timeline_geometry(self) -> dict[str, Any]:
        """The timeline's layout in timeline px (``window.__deepepil_timeline.geometry()``, functions dropped)."""
        return self.page.evaluate(
            "() => JSON.parse(JSON.stringify(window.__deepepil_timeline.geometry()))")

    def timeline_xy(self, frame: float, y: float) -> tuple[float, float]:
        """Viewport coordinates of ``frame`` at timeline height ``y``, scrolled into view for the mouse."""
        x, cy = self.page.evaluate(
            """([frame, y]) => { const t = window.__deepepil_timeline;
                   let [cx, cy] = t.geometry().clientXY(frame, y);
                   if (cy < 4 || cy > window.innerHeight - 4) {
                       document.querySelector('.de-timeline').scrollIntoView({block: 'end'});
                       [cx, cy] = t.geometry().clientXY(frame, y);
                   }
                   return [cx, cy]; }""",
            [frame, y])
        assert 0 <= cy <= self.page.viewport_size["height"], f"timeline y {y} is off screen ({cy})"
        return x, cy

    def track(self, region: str) -> dict[str, Any]:
        """The timeline track of ``region`` (timeline px: top, laneTop, laneHeight, suggestTop, bottom)."""
        tracks = self.timeline_geometry()["tracks"]
        for t in tracks:
            if t["region"] == region:
                return t
        raise AssertionError(f"no timeline track {region!r}; tracks: {[t['region'] for t in tracks]}")

    def moi_xy(self, region: str, frame: float, lane: int = 0) -> tuple[float, float]:
        """Where to point at ``frame`` on lane ``lane`` of the MOI bars of ``region``'s track."""
        t = self.track(region)
        return self.timeline_xy(frame, t["laneTop"] + (lane + 0.5) * t["laneHeight"])

    def suggestion_xy(self, region: str, frame: float) -> tuple[float, float]:
        """Where to point at ``frame`` in the suggestion row of ``region``'s track."""
        t = self.track(region)
        assert t["suggestTop"] >= 0, f"track {region!r} shows no suggestion row"
        return self.timeline_xy(frame, t["suggestTop"] + 7)

    def click_ruler_at(self, frame: float) -> None:
        g = self.timeline_geometry()
        self.page.mouse.click(*self.timeline_xy(frame, g["rulerPx"] / 2))

    def redraws(self) -> int:
        return self.page.evaluate("() => window.__deepepil_timeline.redraws")

    def choose_label(self, label: str, laterality_key: str | None = None) -> None:
        """In the open label chooser: filter to ``label``, set the laterality by its digit key, confirm."""
        chooser = self.page.locator(CHOOSER)
        chooser.wait_for(timeout=self.timeout_ms)
        self.page.locator(CHOOSER_FILTER).fill(label)
        active = self.page.locator(CHOOSER_ITEM_ON)
        assert active.inner_text().strip() == label, f"the chooser offers {active.inner_text()!r} for {label!r}"
        if laterality_key is not None:
            self.page.keyboard.press(laterality_key)
        self.page.keyboard.press("Enter")
        chooser.wait_for(state="detached", timeout=self.timeout_ms)

    def mark_moi(self, start: int, last: int, region: str, label: str, laterality_key: str, fps: int, *,
                 wait_saved: bool = True) -> None:
        """Create an MOI by keyboard: seek to ``start``, i, seek to ``last``, o, then in the chooser pick
        ``region``, filter to ``label``, set the laterality by its digit key and press Enter.

        The MOI is ``[start, last + 1)``. Waits until the status says "Saved" unless ``wait_saved`` is false.
        """
        since = len(self.status_log())
        self.seek_by_keys_to(start, fps)
        self.press("i")
        self.seek_by_keys_to(last, fps)
        self.press("o")
        self.page.locator(CHOOSER_REGION).select_option(region)
        self.choose_label(label, laterality_key)
        if wait_saved:
            self.wait_saved(since)

    # --- status, side panel, dialogs ---------------------------------------------------------

    def status(self) -> dict[str, str]:
        """The menu strip's save status: ``text`` and ``tone`` (ok, busy, warn, bad)."""
        return self.page.locator(STATUS).evaluate(
            """el => ({text: el.innerText.trim(),
                       tone: (Array.from(el.classList).find(c => c.startsWith('de-shell-status--')) || '')
                             .replace('de-shell-status--', '')})""")

    def _watch_status(self) -> None:
        """Log every text the save status shows (``window.__bt_status``), so no short-lived state is missed."""
        self.page.evaluate(
            """(sel) => { const el = document.querySelector(sel);
                   const log = window.__bt_status = [el.innerText.trim()];
                   new MutationObserver(() => { const t = el.innerText.trim();
                       if (t !== log[log.length - 1]) log.push(t); })
                       .observe(el, {childList: true, subtree: true, characterData: true}); }""",
            STATUS)

    def status_log(self) -> list[str]:
        """Every status text shown since the recording was opened, in order (consecutive repeats once)."""
        return self.page.evaluate("() => window.__bt_status.slice()")

    def wait_saved(self, since: int, timeout_ms: float | None = None) -> None:
        """Wait until the status has shown "Saved" after entry ``since`` of :meth:`status_log`."""
        self.page.wait_for_function(
            "(since) => window.__bt_status.slice(since).some(t => t.startsWith('Saved'))",
            arg=since, timeout=timeout_ms or self.timeout_ms, polling=50)

    def wait_status(self, *texts: str, timeout_ms: float | None = None) -> dict[str, str]:
        """Wait until the status text starts with one of ``texts``; return the status."""
        self.page.wait_for_function(
            """([sel, texts]) => { const el = document.querySelector(sel);
                   return el && texts.some(t => el.innerText.trim().startsWith(t)); }""",
            arg=[STATUS, list(texts)], timeout=timeout_ms or self.timeout_ms, polling=50)
        return self.status()

    def selection_details(self) -> dict[str, Any]:
        """The side panel's selection: title, region/label/laterality and start/end frames when shown."""
        return self.page.evaluate(
            """(sel) => { const panels = document.querySelectorAll(sel); const box = panels[panels.length - 1];
                   if (!box) return null;
                   const title = box.querySelector('.de-shell-panel-title')?.innerText.trim();
                   const value = n => box.querySelector(`select[name=${n}]`)?.value ?? null;
                   const frames = Array.from(box.querySelectorAll('.de-shell-frame'))
                                       .map(e => Number(e.innerText.replace(/[^0-9]/g, '')));
                   const ro = {};
                   box.querySelectorAll('.de-shell-field--ro').forEach(r => {
                       ro[r.querySelector('.de-shell-label').innerText.trim()] =
                           r.querySelector('.de-shell-value').innerText.trim(); });
                   return {title, region: value('region'), label: value('label'), laterality: value('laterality'),
                           frames, readonly: ro}; }""",
            SIDE_PANELS,
        )

    def mois_by_keyboard(self, limit: int = 50) -> list[tuple[int, int, str]]:
        """Every MOI as the clinician finds them: Home, then "n" (next MOI) until the playhead stops.

        Returns ``(start_frame, end_frame, label)`` from the side panel of each selected MOI. Like
        the app's own "next MOI", it does not find an MOI that starts at frame 0.
        """
        self.press("Home")
        self.page.wait_for_function("() => window.__deepepil_player.frame === 0")
        found: list[tuple[int, int, str]] = []
        last = 0
        for _ in range(limit):
            self.press("n")
            try:
                self.page.wait_for_function(
                    """(last) => { const f = window.__deepepil_player.frame; return f > last; }""",
                    arg=last, timeout=3000)
            except Exception:  # noqa: BLE001 - playwright TimeoutError: no MOI after the playhead
                break
            last = self.frame()
            self.page.wait_for_function(
                """([sel, start]) => { const p = document.querySelectorAll(sel); const box = p[p.length - 1];
                       const f = box && box.querySelector('.de-shell-frame');
                       return f && Number(f.innerText.replace(/[^0-9]/g, '')) === start; }""",
                arg=[SIDE_PANELS, last], timeout=self.timeout_ms)
            details = self.selection_details()
            found.append((details["frames"][0], details["frames"][1], details["label"]))
        return found

    def open_help(self) -> Any:
        self.press("?")
        help_dialog = self.page.locator(HELP)
        help_dialog.wait_for(timeout=self.timeout_ms)
        return help_dialog

    def toasts(self) -> list[str]:
        return self.page.locator(TOAST).all_inner_texts()

    # --- 3D joints ---------------------------------------------------------------------------

    def joint_mode(self) -> bool:
        return self.page.locator(JOINTS_MODE).get_attribute("aria-pressed") == "true"

    def choose_joint(self, joint: str) -> None:
        """Click ``joint`` in the joints panel (turns joint mode on); wait until it is the chosen one."""
        self.page.locator(f"{JOINT_ITEM}[data-joint='{joint}']").click()
        self.page.locator(f"{JOINT_ITEM}--chosen[data-joint='{joint}']").wait_for(timeout=self.timeout_ms)

    def image_xy(self, stream: str, u_px: float, v_px: float, size: tuple[int, int]) -> tuple[float, float]:
        """Viewport point of depth-image pixel (u, v) on ``stream``'s view, computed from the canvas's box.

        ``size`` is the image's (width, height); the canvas shows it letterboxed (object-fit: contain),
        pixel centres at integers. Independent of the app's own mapping, so a test can check it.
        """
        box = self.page.locator(f".de-player-view[data-stream='{stream}'] canvas").bounding_box()
        width, height = size
        scale = min(box["width"] / width, box["height"] / height)
        left = box["x"] + (box["width"] - width * scale) / 2
        top = box["y"] + (box["height"] - height * scale) / 2
        return left + (u_px + 0.5) * scale, top + (v_px + 0.5) * scale

    def joint_markers(self, stream: str) -> list[dict[str, Any]]:
        """The joint markers drawn on ``stream``'s view: joint, keyframe, id, label and centre (viewport px)."""
        return self.page.locator(f"{JOINTS_OVERLAY}[data-stream='{stream}'] {JOINT_MARKER}").evaluate_all(
            """gs => gs.map(g => { const b = g.querySelector('.de-joints-dot').getBoundingClientRect();
                                    const label = g.querySelector('.de-joints-label');
                                    return {joint: g.dataset.joint, keyframe: g.dataset.keyframe === '1',
                                            id: g.dataset.id ? Number(g.dataset.id) : null,
                                            label: label ? label.textContent : null,
                                            x: b.x + b.width / 2, y: b.y + b.height / 2}; })""")

    def wait_joint_marker(self, stream: str, joint: str, keyframe: bool) -> dict[str, Any]:
        """Wait until ``joint`` is drawn on ``stream``'s view as a keyframe (or interpolated); return it."""
        self.page.locator(f"{JOINTS_OVERLAY}[data-stream='{stream}'] {JOINT_MARKER}[data-joint='{joint}']"
                          f"[data-keyframe='{1 if keyframe else 0}']").wait_for(timeout=self.timeout_ms)
        return next(m for m in self.joint_markers(stream) if m["joint"] == joint)

