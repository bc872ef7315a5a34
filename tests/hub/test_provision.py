"""Prepared notebooks reach each home without ever overwriting what the user changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.provision import LAB_NOTIFICATION_SETTINGS, RECORD_PATH, fingerprint, main, provision_home


def _notebook(path: Path, *sources: str, outputs: list | None = None) -> Path:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
              "outputs": outputs or [], "source": s} for i, s in enumerate(sources)]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.fixture
def templates(tmp_path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    _notebook(folder / "labeling.ipynb", "from deepepil.ui import LabelingApp\nLabelingApp()")
    _notebook(folder / "explore.ipynb", "import deepepil")
    return folder


def test_first_spawn_copies_the_notebooks_and_links_the_team_folder(tmp_path, templates):
    home, team = tmp_path / "home" / "ana", tmp_path / "team"
    report = provision_home(home, templates, team)
    assert report.actions == {"explore.ipynb": "copied", "labeling.ipynb": "copied"}
    assert (home / "labeling.ipynb").read_bytes() == (templates / "labeling.ipynb").read_bytes()
    assert (home / "team").is_symlink() and (home / "team").resolve() == team.resolve()
    (team / "x.txt").write_text("shared")
    assert (home / "team" / "x.txt").read_text() == "shared"
    assert json.loads((home / RECORD_PATH).read_text())["files"]["labeling.ipynb"] == fingerprint(
        templates / "labeling.ipynb")


def test_a_users_edit_is_never_overwritten_and_an_update_lands_beside_it(tmp_path, templates):
    home = tmp_path / "ana"
    provision_home(home, templates)
    edited = _notebook(home / "labeling.ipynb", "LabelingApp(recording=3)  # my own change")
    edited_bytes = edited.read_bytes()
    assert provision_home(home, templates).actions["labeling.ipynb"] == "unchanged"
    assert edited.read_bytes() == edited_bytes

    _notebook(templates / "labeling.ipynb", "from deepepil.ui import LabelingApp\nLabelingApp()  # v2")
    report = provision_home(home, templates)
    assert report.actions["labeling.ipynb"] == "updated copy: labeling (updated).ipynb"
    assert edited.read_bytes() == edited_bytes
    assert fingerprint(home / "labeling (updated).ipynb") == fingerprint(templates / "labeling.ipynb")
    # nothing more happens until the template changes again
    assert provision_home(home, templates).actions["labeling.ipynb"] == "unchanged"

    # the user edits the updated copy too; the next version must not overwrite that either
    _notebook(home / "labeling (updated).ipynb", "my second variant")
    _notebook(templates / "labeling.ipynb", "LabelingApp()  # v3")
    report = provision_home(home, templates)
    assert report.actions["labeling.ipynb"] == "updated copy: labeling (updated 2).ipynb"
    assert "my second variant" in (home / "labeling (updated).ipynb").read_text()


def test_an_untouched_copy_follows_the_template_and_running_it_is_not_an_edit(tmp_path, templates):
    home = tmp_path / "ana"
    provision_home(home, templates)
    # running the notebook adds outputs and execution counts: still the same notebook
    _notebook(home / "explore.ipynb", "import deepepil", outputs=[{"output_type": "stream", "name": "stdout",
                                                                   "text": "ran"}])
    _notebook(templates / "explore.ipynb", "import deepepil\ndeepepil.catalog()")
    assert provision_home(home, templates).actions["explore.ipynb"] == "updated"
    assert fingerprint(home / "explore.ipynb") == fingerprint(templates / "explore.ipynb")
    assert not (home / "explore (updated).ipynb").exists()


def test_a_deleted_notebook_comes_back_and_a_users_own_file_of_that_name_is_kept(tmp_path, templates):
    home = tmp_path / "ana"
    home.mkdir()
    _notebook(home / "explore.ipynb", "the user's own notebook, there before any provisioning")
    report = provision_home(home, templates)
    assert report.actions["explore.ipynb"] == "updated copy: explore (updated).ipynb"
    assert "the user's own notebook" in (home / "explore.ipynb").read_text()
    (home / "labeling.ipynb").unlink()
    assert provision_home(home, templates).actions["labeling.ipynb"] == "restored"
    assert (home / "labeling.ipynb").exists()


def test_a_folder_named_team_in_the_home_is_left_alone(tmp_path, templates):
    home = tmp_path / "ana"
    (home / "team").mkdir(parents=True)
    report = provision_home(home, templates, tmp_path / "team")
    assert report.team_link.startswith("skipped") and not (home / "team").is_symlink()


def test_the_command_line_provisions_a_home(tmp_path, templates, capsys):
    assert main(["--home", str(tmp_path / "h"), "--templates", str(templates), "--team", str(tmp_path / "t")]) == 0
    assert "labeling.ipynb: copied" in capsys.readouterr().out
    assert (tmp_path / "h" / "team").is_symlink()


def test_jupyterlab_does_not_ask_to_fetch_news_unless_the_user_chose_otherwise(tmp_path, templates):
    home = tmp_path / "ana"
    provision_home(home, templates)
    assert json.loads((home / LAB_NOTIFICATION_SETTINGS).read_text()) == {"fetchNews": "false",
                                                                         "checkForUpdates": False}
    (home / LAB_NOTIFICATION_SETTINGS).write_text('{"fetchNews": "true"}')
    provision_home(home, templates)
    assert json.loads((home / LAB_NOTIFICATION_SETTINGS).read_text()) == {"fetchNews": "true"}
