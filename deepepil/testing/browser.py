"""Headless Chromium for the browser tests and benchmarks (the system browser; nothing downloaded)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_ARGS", "chromium_path", "launch_chromium"]

#: Command-line switches for a quiet headless Chromium that reaches nothing on its own.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)


def chromium_path() -> str:
    """The Chromium binary: ``$DEEPEPIL_CHROMIUM``, else ``/usr/bin/chromium``."""
    path = os.environ.get("DEEPEPIL_CHROMIUM", "/usr/bin/chromium")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(
            f"Chromium not found at {path}: install it (`./dev` does, with apt-get install chromium) "
            f"or set DEEPEPIL_CHROMIUM to the browser's executable"
        )
    return path


def launch_chromium(playwright: Any) -> Any:
    """Start the system Chromium, headless, through a Playwright instance."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS), headless=True)
