"""The labeling app's keyboard shortcuts: the default map and a user's own map.

A shortcut map is ``{action: key}`` where a key is written the way the app names a keystroke
(``utilKeyName`` in ``widgets/labeler/00_util.js``): modifiers first, in the order ``Ctrl``,
``Alt``, ``Shift`` (Cmd on a Mac counts as ``Ctrl``), then one key: a lower-case letter or digit
(``"i"``, ``"Shift+o"``), another printable character as typed (``"?"``, ``"+"``, ``"]"``), or a
named key (``"Space"``, ``"ArrowRight"``, ``"Delete"``, ``"F1"``). An action may have several keys
(a list), or none (``None`` or ``[]``: the action is only reachable with the mouse).

A user changes keys in ``~/.deepepil/shortcuts.json`` (a JSON object ``{action: key}``); only
the actions named there change. :func:`load_shortcuts` checks the result: unknown actions,
malformed keys and two actions on one key are refused with a message naming them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Union

from deepepil.errors import ValidationError

__all__ = [
    "ACTION_GROUPS",
    "ACTION_DESCRIPTIONS",
    "DEFAULT_SHORTCUTS",
    "SHORTCUT_GROUPS",
    "USER_SHORTCUTS_PATH",
    "load_shortcuts",
    "normalize_key",
    "shortcut_groups",
    "shortcut_table_markdown",
]

#: Where a user's own map lives (``load_shortcuts()`` reads it when present).
USER_SHORTCUTS_PATH = Path("~/.deepepil/shortcuts.json")

#: Every action of the app, by group (the help overlay's sections), with what it does.
ACTION_GROUPS: dict[str, dict[str, str]] = {
    "Playback": {
        "play_pause": "Play / pause",
        "step_forward": "One frame forward",
        "step_back": "One frame back",
        "second_forward": "One second forward",
        "second_back": "One second back",
        "speed_up": "Faster (up to 4x)",
        "speed_down": "Slower (down to 0.25x)",
        "speed_reset": "Normal speed (1x)",
        "toggle_loop": "Loop the selection on / off",
        "go_start": "Go to the start",
        "go_end": "Go to the end",
        "next_stream_view": "Next stream view (all, IR, depth, RGB)",
    },
    "Navigation": {
        "next_moi": "Next MOI",
        "prev_moi": "Previous MOI",
        "zoom_in": "Zoom the timeline in",
        "zoom_out": "Zoom the timeline out",
        "zoom_fit": "Show the whole recording",
        "zoom_selection": "Zoom to the selection",
    },
    "Labeling": {
        "mark_in": "Mark in: start a new MOI at the playhead",
        "mark_out": "Mark out: end the MOI at the playhead and choose its label",
        "relabel": "Relabel the selected MOI",
        "accept_suggestion": "Accept the selected suggestion",
        "reject_suggestion": "Reject the selected suggestion",
        "explain": "Explanation on / off: where and when the model saw the selected suggestion (Grad-CAM)",
        "mark_onset": "Seizure onset at the playhead",
        "mark_offset": "Seizure offset at the playhead",
        "joint_mode": "3D joints: joint mode on / off (a click on IR or depth places the chosen joint)",
        "joint_head": "Joint: head (turns joint mode on)",
        "joint_neck": "Joint: neck",
        "joint_shoulder": "Joint: left shoulder; again: right shoulder",
        "joint_elbow": "Joint: left elbow; again: right elbow",
        "joint_wrist": "Joint: left wrist; again: right wrist",
        "joint_hip": "Joint: left hip; again: right hip",
        "joint_knee": "Joint: left knee; again: right knee",
        "joint_ankle": "Joint: left ankle; again: right ankle",
        "prev_keyframe": "Previous keyframe of the chosen joint (of any joint when none is chosen)",
        "next_keyframe": "Next keyframe of the chosen joint (of any joint when none is chosen)",
    },
    "Editing": {
        "delete_selected": "Delete the selection",
        "undo": "Undo your last change",
        "redo": "Redo",
    },
    "App": {
        "help": "Show / hide this help",
        "escape": "Close a popup, or clear the selection",
        "close_recording": "Close the recording, back to the list",
        "focus_search": "Search the recordings (list screen)",
    },
}

#: ``{action: description}`` for every action, in help order.
ACTION_DESCRIPTIONS: dict[str, str] = {a: d for group in ACTION_GROUPS.values() for a, d in group.items()}

#: The default map. Letters are mnemonic (i/o: mark in/out, r: relabel, a/x: accept/reject,
#: n/p: next/previous, l: loop, v: view, z: zoom, j: joints, e: explanation); Shift+i/Shift+o mark the seizure onset/offset;
#: the digits 1-8 pick a joint from the head down (a paired joint's key again: the other side).
DEFAULT_SHORTCUTS: dict[str, Union[str, list[str]]] = {
    "play_pause": "Space",
    "step_forward": "ArrowRight",
    "step_back": "ArrowLeft",
    "second_forward": "Shift+ArrowRight",
    "second_back": "Shift+ArrowLeft",
    "speed_up": "]",
    "speed_down": "[",
    "speed_reset": "=",
    "toggle_loop": "l",
    "go_start": "Home",
    "go_end": "End",
    "next_stream_view": "v",
    "next_moi": "n",
    "prev_moi": "p",
    "zoom_in": "+",
    "zoom_out": "-",
    "zoom_fit": "0",
    "zoom_selection": "z",
    "mark_in": "i",
    "mark_out": "o",
    "relabel": "r",
    "accept_suggestion": "a",
    "reject_suggestion": "x",
    "explain": "e",
    "mark_onset": "Shift+i",
    "mark_offset": "Shift+o",
    "joint_mode": "j",
    "joint_head": "1",
    "joint_neck": "2",
    "joint_shoulder": "3",
    "joint_elbow": "4",
    "joint_wrist": "5",
    "joint_hip": "6",
    "joint_knee": "7",
    "joint_ankle": "8",
    "prev_keyframe": ",",
    "next_keyframe": ".",
    "delete_selected": ["Delete", "Backspace"],
    "undo": "Ctrl+z",
    "redo": ["Ctrl+Shift+z", "Ctrl+y"],
    "help": "?",
    "escape": "Escape",
    # Not Ctrl+W / Ctrl+Shift+W: the browser closes the tab or window on those before a page sees them.
    "close_recording": "Ctrl+Shift+x",
    "focus_search": "/",
}

_MODIFIERS = ("Ctrl", "Alt", "Shift")
_MODIFIER_ALIASES = {"ctrl": "Ctrl", "control": "Ctrl", "cmd": "Ctrl", "meta": "Ctrl", "command": "Ctrl",
                     "alt": "Alt", "option": "Alt", "opt": "Alt", "shift": "Shift"}
_NAMED_KEYS = (
    "Space", "Enter", "Tab", "Escape", "Backspace", "Delete", "Insert", "Home", "End", "PageUp", "PageDown",
    "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", *(f"F{i}" for i in range(1, 13)),
)
_NAMED_ALIASES = {k.lower(): k for k in _NAMED_KEYS} | {
    "esc": "Escape", "del": "Delete", "return": "Enter", "left": "ArrowLeft", "right": "ArrowRight",
    "up": "ArrowUp", "down": "ArrowDown", "pgup": "PageUp", "pgdn": "PageDown", " ": "Space",
}
_KEY_HELP = ('write modifiers first (Ctrl, Alt, Shift, joined with "+"), then one key: a letter or digit '
             '("i", "Shift+o", "Ctrl+z"), a character as typed ("?", "+", "]"), or a named key '
             f'({", ".join(_NAMED_KEYS[:16])}, F1..F12)')


def normalize_key(key: str) -> str:
    """The canonical spelling of ``key`` (``"ctrl+Z"`` -> ``"Ctrl+z"``, ``"space"`` -> ``"Space"``).

    Raises
    ------
    ValidationError
        ``key`` is not a keystroke the app can name; the message says how to write one.
    """
    if not isinstance(key, str) or not key.strip():
        raise ValidationError(f"shortcut key {key!r} is empty or not text; {_KEY_HELP}")
    text = key.strip()
    # "+" alone, or ending in "++" ("Ctrl++"), is the plus key itself.
    if text == "+":
        parts = ["+"]
    elif text.endswith("++"):
        parts = [*text[:-2].split("+"), "+"]
    else:
        parts = text.split("+")
    *mods, base = parts
    modifiers = set()
    for mod in mods:
        name = _MODIFIER_ALIASES.get(mod.strip().lower())
        if name is None:
            raise ValidationError(f"shortcut key {key!r}: {mod!r} is not a modifier; {_KEY_HELP}")
        if name in modifiers:
            raise ValidationError(f"shortcut key {key!r} names {name} twice")
        modifiers.add(name)
    if base == "":
        raise ValidationError(f"shortcut key {key!r} has no key after its modifiers; {_KEY_HELP}")
    if base.lower() in _NAMED_ALIASES and (len(base) > 1 or base == " "):
        base = _NAMED_ALIASES[base.lower()]
    elif len(base) == 1 and base.isalpha() and base.isascii():
        base = base.lower()
    elif len(base) == 1 and base.isprintable() and not base.isspace():
        if "Shift" in modifiers and not ("Alt" in modifiers and base.isdigit()):
            raise ValidationError(
                f"shortcut key {key!r}: write the character itself without Shift (e.g. {base!r}); "
                "Shift is implied by the character and differs between keyboard layouts")
    else:
        raise ValidationError(f"shortcut key {key!r}: {base!r} is not a key; {_KEY_HELP}")
    return "+".join([*(m for m in _MODIFIERS if m in modifiers), base])


def _keys_of(action: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [normalize_key(value)]
    if isinstance(value, (list, tuple)):
        return [normalize_key(v) for v in value]
    raise ValidationError(f"shortcut for {action!r} must be a key, a list of keys or null, not {type(value).__name__}")


def _read_overrides(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); "
                              'write an object like {"play_pause": "k", "mark_in": "Shift+i"}') from exc
    if not isinstance(data, dict):
        raise ValidationError(f'{path}: must hold a JSON object {{action: key}}, not {type(data).__name__}')
    return data


def load_shortcuts(overrides: Union[Mapping[str, object], str, os.PathLike, None] = None) -> dict[str, object]:
    """The shortcut map: the defaults with a user's changes.

    Parameters
    ----------
    overrides : dict, path or None
        ``{action: key}`` (a key, a list of keys, or None to leave the action without a key), or
        the path of a JSON file holding one. None reads ``~/.deepepil/shortcuts.json`` when it
        exists, else uses the defaults.

    Returns
    -------
    dict
        ``{action: key}`` for every action, keys spelled canonically; an action with several
        keys maps to a list, one without a key to None.

    Raises
    ------
    ValidationError
        An unknown action, a malformed key, or two actions on one key (the message names them
        and the file, when one was read).
    """
    source = ""
    if overrides is None:
        path = USER_SHORTCUTS_PATH.expanduser()
        if not path.exists():
            return _checked(dict(DEFAULT_SHORTCUTS), "")
        overrides, source = _read_overrides(path), f"{path}: "
    elif isinstance(overrides, (str, os.PathLike)):
        path = Path(overrides).expanduser()
        if not path.exists():
            raise ValidationError(f"shortcut file {path} does not exist")
        overrides, source = _read_overrides(path), f"{path}: "
    elif not isinstance(overrides, Mapping):
        raise ValidationError(f"shortcuts must be a dict, a path or None, not {type(overrides).__name__}")
    unknown = sorted(set(overrides) - set(DEFAULT_SHORTCUTS))
    if unknown:
        raise ValidationError(f"{source}unknown shortcut action(s) {', '.join(map(repr, unknown))}; "
                              f"actions are: {', '.join(DEFAULT_SHORTCUTS)}")
    merged = dict(DEFAULT_SHORTCUTS)
    merged.update(overrides)
    return _checked(merged, source)


def _checked(shortcuts: Mapping[str, object], source: str) -> dict[str, object]:
    result: dict[str, object] = {}
    owner: dict[str, str] = {}
    clashes: list[str] = []
    for action, value in shortcuts.items():
        try:
            keys = _keys_of(action, value)
        except ValidationError as exc:
            raise ValidationError(f"{source}{action}: {exc}") from None
        for key in keys:
            if key in owner and owner[key] != action:
                clashes.append(f"{key!r} is set for both {owner[key]!r} and {action!r}")
            owner.setdefault(key, action)
        result[action] = None if not keys else keys[0] if len(keys) == 1 else keys
    if clashes:
        raise ValidationError(f"{source}one key cannot do two things: {'; '.join(clashes)}. "
                              "Give one of each pair another key (or null for none).")
    return result


def shortcut_groups() -> list[dict[str, object]]:
    """The help overlay's sections: ``[{name, actions: [{action, description}]}]`` (the `shortcut_groups` trait)."""
    return [{"name": name, "actions": [{"action": a, "description": d} for a, d in actions.items()]}
            for name, actions in ACTION_GROUPS.items()]


#: The help overlay's sections, as the ``shortcut_groups`` trait carries them.
SHORTCUT_GROUPS: list[dict[str, object]] = shortcut_groups()


def shortcut_table_markdown(shortcuts: Union[Mapping[str, object], None] = None) -> str:
    """A Markdown table of ``shortcuts`` (default: :data:`DEFAULT_SHORTCUTS`) by group, for the user guide."""
    shortcuts = DEFAULT_SHORTCUTS if shortcuts is None else shortcuts
    lines = ["| Group | Action | What it does | Key |", "|---|---|---|---|"]
    for group, actions in ACTION_GROUPS.items():
        for action, description in actions.items():
            value = shortcuts.get(action)
            keys = [] if value is None else [value] if isinstance(value, str) else list(value)
            shown = " or ".join(f"`{k}`" for k in keys) if keys else "(none)"
            lines.append(f"| {group} | `{action}` | {description} | {shown.replace('|', '&#124;')} |")
    return "\n".join(lines)
