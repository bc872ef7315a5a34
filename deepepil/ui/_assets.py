"""The front-end sources of the widgets, shipped inside the package.

``deepepil/ui/assets`` is a link to the repository's ``widgets/`` folder (the wheel holds a
copy). A widget's ES module is the concatenation of the ``.js`` files of its folder in name
order (``widgets/labeler/00_util.js``, ``10_player.js``, ...): every file but the last one
declares top-level functions only, the last one holds the ``export default``. Nothing is
loaded from the network at run time.
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["ASSETS", "widget_sources"]

ASSETS = Path(__file__).resolve().parent / "assets"


@functools.cache
def widget_sources(name: str) -> tuple[str, str]:
    """The ES module and the CSS of widget ``name`` (a folder under ``widgets/``).

    Returns
    -------
    (esm, css) : tuple of str
        Each the concatenation of the folder's ``.js`` (``.css``) files in name order, every
        part preceded by a comment naming its file.

    Raises
    ------
    FileNotFoundError
        No such widget folder, or it holds no ``.js`` file.
    """
    folder = ASSETS / name
    scripts = sorted(folder.glob("*.js"))
    if not scripts:
        known = sorted(p.name for p in ASSETS.iterdir() if p.is_dir())
        raise FileNotFoundError(f"no widget sources in {folder}; widgets: {known}")

    def join(paths: list[Path]) -> str:
        return "\n".join(f"/* --- {p.name} --- */\n{p.read_text(encoding='utf-8')}" for p in paths)

    return join(scripts), join(sorted(folder.glob("*.css")))
