"""Model explanations in the labeling app: a suggestion's Grad-CAM drawn over the IR and depth views.

A suggestion published with ``deepepil predict --explain DIR`` points at its explanation file
(``explanation_uri``: an :class:`~deepepil.ml.explain.Explanation` saved as ``.npz``). When the
clinician asks for it (``{type: "explanation", req, suggestion_id}``), the kernel reads that file
and answers with the clip's source frames, its crop box in depth/IR pixels and one RGBA PNG per
clip frame: the map through the ``inferno`` colormap, transparent where nothing speaks for the
class. The browser stretches each PNG over the box and shows the one of the playhead's frame.

Nothing here imports torch: reading an explanation needs numpy and Pillow only.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepepil.errors import NotFoundError, ValidationError

__all__ = ["ExplanationServer", "heat_rgba"]

#: Most explanations whose PNGs are kept (a clinician flips between a few suggestions).
CACHE_ENTRIES = 8
#: Opacity of the strongest evidence; weaker evidence fades out linearly.
MAX_ALPHA = 0.7
#: Evidence below this fraction of the clip's peak is not drawn (keeps the frame readable).
FLOOR = 0.15

_INFERNO: np.ndarray | None = None


def _lut() -> np.ndarray:
    global _INFERNO
    if _INFERNO is None:
        from matplotlib import colormaps

        _INFERNO = (colormaps["inferno"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    return _INFERNO


def heat_rgba(cam: np.ndarray) -> np.ndarray:
    """``cam`` ((H, W) or (T, H, W) in [0, 1]) as uint8 RGBA: inferno colours, alpha rising from ``FLOOR`` to 1."""
    cam = np.clip(np.asarray(cam, dtype=np.float32), 0.0, 1.0)
    rgb = _lut()[(cam * 255).round().astype(np.uint8)]
    alpha = np.clip((cam - FLOOR) / (1.0 - FLOOR), 0.0, 1.0) * (MAX_ALPHA * 255)
    return np.concatenate([rgb, alpha.round().astype(np.uint8)[..., None]], axis=-1)


def _png(rgba: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG", compress_level=1)
    return out.getvalue()


class ExplanationServer:
    """Answers the app's ``explanation`` requests for the open recording, with a small cache.

    Parameters
    ----------
    store : LabelStore
        The app's label store (the user's own database login: row-level security applies).
    recording_id : int
        The open recording; a suggestion of another recording is refused.
    """

    def __init__(self, store: Any, recording_id: int) -> None:
        self.store = store
        self.recording_id = int(recording_id)
        self._cache: OrderedDict[tuple[int, str], tuple[dict[str, Any], list[bytes]]] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, content: Mapping[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
        """The reply to ``{type: "explanation", suggestion_id}`` and one PNG per clip frame.

        Returns
        -------
        reply : dict
            ``{ok, error, suggestion_id, frames: [source frame, ...], end_frame, box_px: [y0, y1, x0, x1],
            class_name, score, mime: "image/png", width_px, height_px}`` (PNG size, the clip's grid).
        buffers : list of bytes
            One PNG per entry of ``frames``.

        Raises
        ------
        ValidationError
            No suggestion id, or the suggestion is not of the open recording.
        NotFoundError
            No such suggestion, or it has no explanation.
        ExplanationFileError
            The explanation file is missing or unreadable (the message names it).
        """
        from deepepil.ml.explain import load_explanation

        sid = content.get("suggestion_id")
        if isinstance(sid, bool) or not isinstance(sid, int):
            raise ValidationError(f"suggestion_id must be the id of a suggestion (an integer), got {sid!r}")
        row = self.store.suggestion(sid)
        if int(row.recording_id) != self.recording_id:
            raise ValidationError(f"suggestion {sid} belongs to another recording; open that recording to see it")
        uri = getattr(row, "explanation_uri", None)
        if not uri:
            raise NotFoundError(f"suggestion {sid} ({row.label}, model {row.model_version}) has no explanation; "
                                f"the model's suggestions carry one when published with "
                                f"`deepepil predict --explain DIR`")
        key = (int(sid), str(uri))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        exp = load_explanation(uri)
        pngs = [_png(frame) for frame in heat_rgba(exp.cam)]
        reply = {"ok": True, "error": None, "suggestion_id": int(sid), "frames": [int(f) for f in exp.frames],
                 "end_frame": exp.end_frame, "box_px": list(exp.box_px), "class_name": exp.class_name,
                 "score": round(float(exp.score), 4), "mime": "image/png",
                 "width_px": int(exp.cam.shape[2]), "height_px": int(exp.cam.shape[1])}
        with self._lock:
            self._cache[key] = (reply, pngs)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return reply, pngs
