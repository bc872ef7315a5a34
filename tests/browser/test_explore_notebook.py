"""The explore notebook, run by a user in JupyterLab: its outputs render in the browser."""

from __future__ import annotations

import pytest
from _lab import cell_count, notebook_errors, notebook_outputs_text, open_lab, open_notebook, run_all_cells

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_explore_notebook_renders_frames_in_jupyterlab(lab, page, shot):
    open_lab(page, lab.server)
    open_notebook(page, lab.notebooks["explore.ipynb"])
    n_cells = cell_count(page)
    run_all_cells(page)
    shot("explore-after-run")
    assert notebook_errors(page) == []
    text = notebook_outputs_text(page)
    assert f"{lab.cohort.n_frames} frames at 30 fps" in text, text[-2000:]
    # the frames are shown: decoded images with a real size, not broken placeholders
    images = page.locator(".jp-OutputArea-output img")
    assert images.count() >= 3
    sizes = images.evaluate_all("imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert all(done and w > 0 and h > 0 for done, w, h in sizes), sizes
    assert cell_count(page) == n_cells
