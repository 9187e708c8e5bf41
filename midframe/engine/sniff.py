"""What counts as a video: pure rules on what ffmpeg detected in a file and what its name says.

ffmpeg guesses a format for any bytes, scoring each guess (ffprobe's ``probe_score``, 100 when a
container's magic is found, 25 or less when ffmpeg itself warns "misdetection possible", 1 when only
the file name matched). Random bytes are now and then taken for a headerless elementary stream (a raw
H.263 "video" of one frame), so a file is refused as not a video when:

- ffmpeg found a headerless elementary stream (``h263``, ``h264``, ``m4v``...) but the extension does
  not name that raw format (an ``.mp4`` is an ISO-BMFF file, never a bare H.263 stream);
- the guess is weak (score 25 or less) and the extension does not name the format guessed, or the
  content matched nothing at all (score 1: only the name did);
- the container is a real one, but not one the extension can name (a Matroska file called ``.mp4``);
  the reason says what to rename it to;
- it has no duration and only a frame or two.

Extensions this table does not know (a user's own ``daemon.extensions``) skip the naming rule; raw
streams and weak guesses are still refused for them.
"""

from __future__ import annotations

from fractions import Fraction

WEAK_SCORE = 25  # ffmpeg's AVPROBE_SCORE_RETRY: at or below it ffmpeg warns "misdetection possible"
NAME_ONLY_SCORE = 1  # the content matched nothing; only the extension did
MAX_FRAMES_WITHOUT_DURATION = 2

# Demuxers of headerless elementary streams: detected from start codes that random bytes contain.
RAW_STREAMS = frozenset({
    "h261", "h263", "h264", "hevc", "vvc", "m4v", "mpegvideo", "cavsvideo", "avs2", "avs3", "dirac", "vc1",
    "rawvideo", "obu", "mjpeg", "mjpeg_2000", "ingenient", "bitpacked", "v210", "v210x",
})

_MOV = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})
_MATROSKA = frozenset({"matroska", "webm"})
_MPEG = frozenset({"mpeg", "mpegts", "mpegvideo"})
# For each extension, the demuxers whose files may carry that name.
EXTENSION_FORMATS: dict[str, frozenset[str]] = {
    "mp4": _MOV, "mov": _MOV, "3gp": _MOV, "3g2": _MOV, "mj2": _MOV, "f4v": _MOV, "m4v": _MOV | {"m4v"},
    "mkv": _MATROSKA, "webm": _MATROSKA, "mk3d": _MATROSKA,
    "avi": frozenset({"avi"}), "divx": frozenset({"avi"}),
    "ts": frozenset({"mpegts"}), "mts": frozenset({"mpegts"}), "m2ts": frozenset({"mpegts"}),
    "mpg": _MPEG, "mpeg": _MPEG, "m2p": frozenset({"mpeg"}), "vob": frozenset({"mpeg"}),
    "m1v": frozenset({"mpegvideo"}), "m2v": frozenset({"mpegvideo"}), "mpv": frozenset({"mpegvideo"}),
    "wmv": frozenset({"asf"}), "asf": frozenset({"asf"}),
    "flv": frozenset({"flv", "live_flv"}),
    "ogv": frozenset({"ogg"}), "ogg": frozenset({"ogg"}),
    "mxf": frozenset({"mxf"}), "dv": frozenset({"dv"}), "nut": frozenset({"nut"}),
    "rm": frozenset({"rm"}), "rmvb": frozenset({"rm"}), "y4m": frozenset({"yuv4mpegpipe"}),
    "ivf": frozenset({"ivf"}), "obu": frozenset({"obu"}),
    "h264": frozenset({"h264"}), "264": frozenset({"h264"}), "avc": frozenset({"h264"}),
    "h265": frozenset({"hevc"}), "265": frozenset({"hevc"}), "hevc": frozenset({"hevc"}),
    "h263": frozenset({"h263"}), "h261": frozenset({"h261"}), "vc1": frozenset({"vc1"}),
    "mjpeg": frozenset({"mjpeg"}), "mjpg": frozenset({"mjpeg"}),
}
_DESCRIPTION = {
    "mov": "an MP4/QuickTime", "matroska": "a Matroska/WebM", "avi": "an AVI", "mpegts": "an MPEG-TS",
    "mpeg": "an MPEG program stream", "asf": "an ASF/WMV", "flv": "an FLV", "ogg": "an Ogg", "mxf": "an MXF",
}
_SUGGESTION = {"mov": "mp4", "matroska": "mkv", "avi": "avi", "mpegts": "ts", "mpeg": "mpg", "asf": "wmv",
               "flv": "flv", "ogg": "ogv", "mxf": "mxf", "dv": "dv", "nut": "nut", "rm": "rm", "ivf": "ivf",
               "yuv4mpegpipe": "y4m"}


def _names(format_name: str) -> frozenset[str]:
    return frozenset(part.strip() for part in format_name.split(",") if part.strip())


def container_refusal(*, extension: str, format_name: str, probe_score: int | None) -> str | None:
    """Why a file named ``*.extension`` in which ffmpeg detected ``format_name`` (with ``probe_score``,
    None where unknown) is not a video; None when it may be one."""
    ext = extension.lower().lstrip(".")
    names = _names(format_name)
    allowed = EXTENSION_FORMATS.get(ext)
    named = allowed is not None and bool(names & allowed)
    shown = f".{ext}" if ext else "a name without an extension"
    if probe_score is not None and probe_score <= NAME_ONLY_SCORE:
        return f"is not a video file (nothing in it is a format ffmpeg knows; only its name {shown} matched)"
    raw = names & RAW_STREAMS
    if raw and not named:
        return (f"is not a video file (ffmpeg could only guess a headerless {min(raw)} stream from its bytes, "
                f"which a file named {shown} never is)")
    if probe_score is not None and probe_score <= WEAK_SCORE and not named:
        return (f"is not a video file (ffmpeg's best guess, {format_name}, is too uncertain: "
                f"probe score {probe_score} of 100)")
    if allowed is not None and not named:
        kind = next((_DESCRIPTION[n] for n in sorted(names) if n in _DESCRIPTION), f"a {format_name} format")
        rename = next((_SUGGESTION[n] for n in sorted(names) if n in _SUGGESTION), None)
        advice = f"; rename it to .{rename} to convert it" if rename else ""
        return f"is {kind} file, not what its extension .{ext} names{advice}"
    return None


def frames_refusal(*, frame_count: int, duration: Fraction | None) -> str | None:
    """Why a stream of ``frame_count`` frames whose container gives ``duration`` is not a video."""
    if duration is None and frame_count <= MAX_FRAMES_WITHOUT_DURATION:
        return (f"is not a video (ffmpeg found {frame_count} frame{'s' if frame_count != 1 else ''} "
                "and no duration in it)")
    return None



def frame_size_refusal(*, width: int, height: int, max_pixels: int) -> str | None:
    """Why frames of ``width`` x ``height`` are refused, or None. A file can declare any size in a few
    bytes; decoding it takes width x height x 3 bytes a frame, several frames at a time."""
    pixels = width * height
    if pixels <= max_pixels:
        return None
    return (f"has {width}x{height} frames ({pixels / 1e6:.1f} megapixels), more than engine.max_frame_pixels "
            f"allows ({max_pixels} pixels, {max_pixels / 1e6:.1f} megapixels; 8K is 7680x4320); raise "
            "engine.max_frame_pixels if the machine has the memory for it")
