"""The labeling app's shortcut map: defaults, a user's map, and the user guide's table."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deepepil.errors import ValidationError
from deepepil.ui.shortcuts import (
    ACTION_DESCRIPTIONS,
    ACTION_GROUPS,
    DEFAULT_SHORTCUTS,
    load_shortcuts,
    normalize_key,
    shortcut_groups,
    shortcut_table_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
LABELER = ROOT / "widgets" / "labeler"
GUIDE = ROOT / "docs" / "labeling-app.md"


def _keys(value):
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def test_defaults_are_valid_and_clash_free():
    loaded = load_shortcuts({})
    assert loaded == {a: v for a, v in DEFAULT_SHORTCUTS.items()}
    every_key = [k for v in DEFAULT_SHORTCUTS.values() for k in _keys(v)]
    assert len(every_key) == len(set(every_key))
    assert all(normalize_key(k) == k for k in every_key), "defaults must be spelled canonically"


def test_every_action_has_a_group_a_description_and_a_default():
    grouped = [a for actions in ACTION_GROUPS.values() for a in actions]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == set(DEFAULT_SHORTCUTS) == set(ACTION_DESCRIPTIONS)
    assert list(ACTION_GROUPS) == ["Playback", "Navigation", "Labeling", "Editing", "App"]
    groups = shortcut_groups()
    assert [g["name"] for g in groups] == list(ACTION_GROUPS)
    assert groups[0]["actions"][0] == {"action": "play_pause", "description": "Play / pause"}


def test_the_documented_keys_of_the_issue():
    assert DEFAULT_SHORTCUTS["play_pause"] == "Space"
    assert DEFAULT_SHORTCUTS["second_forward"] == "Shift+ArrowRight"
    assert DEFAULT_SHORTCUTS["mark_in"] == "i" and DEFAULT_SHORTCUTS["mark_out"] == "o"
    assert DEFAULT_SHORTCUTS["undo"] == "Ctrl+z"
    assert "Ctrl+Shift+z" in DEFAULT_SHORTCUTS["redo"] and "Ctrl+y" in DEFAULT_SHORTCUTS["redo"]
    assert DEFAULT_SHORTCUTS["help"] == "?"
    # Keys the browser keeps for itself never reach the page.
    reserved = {"Ctrl+w", "Ctrl+Shift+w", "Ctrl+t", "Ctrl+n", "Ctrl+Shift+n", "Ctrl+Shift+t", "Ctrl+Tab"}
    assert not reserved & {k for v in DEFAULT_SHORTCUTS.values() for k in _keys(v)}


def test_every_action_is_implemented_by_a_part_of_the_app():
    sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted(LABELER.glob("*.js")))
    missing = [a for a in DEFAULT_SHORTCUTS if not re.search(rf"\b{a}\b", sources)]
    assert not missing, f"actions with a key but no code in widgets/labeler: {missing}"


@pytest.mark.parametrize("given, canonical", [
    ("ctrl+Z", "Ctrl+z"), ("shift+ctrl+z", "Ctrl+Shift+z"), ("Cmd+y", "Ctrl+y"), ("space", "Space"),
    ("esc", "Escape"), ("left", "ArrowLeft"), ("Shift+arrowright", "Shift+ArrowRight"), ("I", "i"),
    ("Shift+I", "Shift+i"), ("?", "?"), ("+", "+"), ("Ctrl++", "Ctrl++"), ("f5", "F5"), ("Alt+1", "Alt+1"),
])
def test_normalize_key(given, canonical):
    assert normalize_key(given) == canonical


@pytest.mark.parametrize("bad, words", [
    ("", "empty"), ("Hyper+k", "not a modifier"), ("Ctrl+", "no key"), ("Ctrl+Ctrl+z", "twice"),
    ("PageUpp", "not a key"), ("Shift+?", "without Shift"), ("Shift+1", "without Shift"),
    ("Ctrl+Shift+?", "without Shift"),
])
def test_malformed_keys_are_refused_with_the_reason(bad, words):
    with pytest.raises(ValidationError, match=words):
        normalize_key(bad)


def test_overrides_merge_and_unbind():
    loaded = load_shortcuts({"play_pause": "k", "toggle_loop": None, "delete_selected": "Delete",
                             "mark_in": ["i", "Shift+m"]})
    assert loaded["play_pause"] == "k"
    assert loaded["toggle_loop"] is None
    assert loaded["delete_selected"] == "Delete"
    assert loaded["mark_in"] == ["i", "Shift+m"]
    assert loaded["step_forward"] == "ArrowRight"
    assert DEFAULT_SHORTCUTS["play_pause"] == "Space", "the defaults must not change"


def test_unknown_action_is_named():
    with pytest.raises(ValidationError, match=r"unknown shortcut action\(s\) 'jump_far'.*actions are: play_pause"):
        load_shortcuts({"jump_far": "j"})


def test_two_actions_on_one_key_name_both():
    with pytest.raises(ValidationError, match=r"'i' is set for both 'play_pause' and 'mark_in'"):
        load_shortcuts({"play_pause": "i"})
    # Freeing the key first makes the same change valid.
    assert load_shortcuts({"play_pause": "i", "mark_in": "m"})["play_pause"] == "i"


def test_malformed_key_in_a_map_names_the_action():
    with pytest.raises(ValidationError, match=r"^mark_out: shortcut key 'Super\+o'"):
        load_shortcuts({"mark_out": "Super+o"})
    with pytest.raises(ValidationError, match="must be a key, a list of keys or null"):
        load_shortcuts({"mark_out": 5})


def test_user_file_in_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_shortcuts() == load_shortcuts({})
    folder = tmp_path / ".deepepil"
    folder.mkdir()
    (folder / "shortcuts.json").write_text(json.dumps({"help": "F1"}), encoding="utf-8")
    assert load_shortcuts()["help"] == "F1"
    (folder / "shortcuts.json").write_text(json.dumps({"help": "i"}), encoding="utf-8")
    with pytest.raises(ValidationError, match=r"shortcuts\.json: one key cannot do two things"):
        load_shortcuts()
    (folder / "shortcuts.json").write_text("{help: F1}", encoding="utf-8")
    with pytest.raises(ValidationError, match="not valid JSON"):
        load_shortcuts()


def test_explicit_path(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"zoom_fit": "f"}), encoding="utf-8")
    assert load_shortcuts(path)["zoom_fit"] == "f"
    assert load_shortcuts(str(path))["zoom_fit"] == "f"
    with pytest.raises(ValidationError, match="does not exist"):
        load_shortcuts(tmp_path / "missing.json")
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValidationError, match="must hold a JSON object"):
        load_shortcuts(path)


def test_user_guide_lists_every_action_with_its_default_key():
    guide = GUIDE.read_text(encoding="utf-8")
    assert shortcut_table_markdown() in guide, (
        "docs/labeling-app.md's shortcut table is out of date: paste deepepil.ui.shortcuts.shortcut_table_markdown()")
    for action in DEFAULT_SHORTCUTS:
        assert f"`{action}`" in guide


def _js_event(key: str) -> dict:
    """A keydown event (US layout) that types ``key`` as the app spells it."""
    *mods, base = ["+"] if key == "+" else [*key[:-2].split("+"), "+"] if key.endswith("++") else key.split("+")
    event = {"ctrlKey": "Ctrl" in mods, "altKey": "Alt" in mods, "shiftKey": "Shift" in mods, "metaKey": False}
    if base == "Space":
        event["key"] = " "
    elif len(base) == 1 and base.isalpha():
        event["key"] = base.upper() if event["shiftKey"] else base
        event["code"] = f"Key{base.upper()}"
    else:
        event["key"] = base
        if len(base) == 1 and not base.isalnum() and base not in "[]=-/":
            event["shiftKey"] = True  # "?", "+" need Shift on a US keyboard: the name must not say so
    return event


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run widgets/labeler/00_util.js")
def test_the_app_names_every_default_key_the_same_way():
    keys = sorted({k for v in DEFAULT_SHORTCUTS.values() for k in _keys(v)} | {"Shift+Space", "Alt+1", "Ctrl++"})
    events = [_js_event(k) for k in keys]
    script = (LABELER / "00_util.js").read_text(encoding="utf-8") + (
        f"\nconst events = {json.dumps(events)};\n"
        "process.stdout.write(JSON.stringify(events.map((e) => utilKeyName(e))));\n")
    names = json.loads(subprocess.run(["node", "-e", script], check=True, capture_output=True, text=True).stdout)
    assert dict(zip(keys, names)) == {k: k for k in keys}
