"""Which codec and container an output gets, and which pairs cannot work: pure tables, no I/O.

Names: a *codec* is ffprobe's ``codec_name`` of a stream (``h264``, ``hevc``, ``vp9``, ``aac``...);
an *encoder* is what ``output.codec`` names (``libx264``, ``libx265``, ``libvpx-vp9``...); a
*container* is a file extension without the dot (``mp4``, ``webm``...).

The rules (``output.codec: auto``, ``output.container: null``, the defaults):

- the video codec follows the source: H.264 -> libx264, HEVC -> libx265, VP9 (and VP8) ->
  libvpx-vp9, AV1 -> libsvtav1; anything else (MPEG-4 part 2, MPEG-2, MJPEG, ProRes, DV, WMV...)
  gets libx264, or libx265 for sources above 8 bits (H.264 above 8 bits plays on few devices);
- the pixel format keeps the source's bit depth (see ``pix_fmt_for``);
- the container is the source's when it holds the chosen video codec and can carry every
  subtitle stream (copied or converted), else ``mkv``; audio it cannot hold is re-encoded to the
  container's best fit (``Container.audio_encoder``), never dropped;
- HEVC in MP4/MOV is tagged ``hvc1`` (what Apple players and browsers require); H.264 into AVI
  gets the Annex B bitstream filter.

Entry points: ``follow_source`` (the auto encoder), ``choose_container`` (container: null),
``encoder_for_container`` (codec: auto with an explicit container), ``settings_problem`` (an
explicit ``output.codec`` / ``output.container`` pair checked before any work; the daemon's
up-front settings check and the plan call it), ``audio_plan`` and ``subtitle_plan`` (what happens
to each non-video stream), ``video_tag``, ``join_bitstream_filter``, ``pix_fmt_for``.
Unknown encoders and containers are never refused here: ffmpeg's trial encode in the plan decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

AUTO = "auto"
FALLBACK_CONTAINER = "mkv"
DEFAULT_PIX_FMT = "yuv420p"

TEXT_SUBTITLES = frozenset({
    "subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text", "microdvd", "subviewer", "subviewer1",
    "sami", "realtext", "jacosub", "stl", "mpl2", "pjs", "vplayer",
})

# Encoders whose codec is not their name's obvious prefix; hardware encoders are matched by suffix.
_ENCODER_CODECS = {
    "libx264": "h264", "libx264rgb": "h264", "libopenh264": "h264",
    "libx265": "hevc", "libkvazaar": "hevc",
    "libvpx": "vp8", "libvpx-vp9": "vp9",
    "libsvtav1": "av1", "libaom-av1": "av1", "librav1e": "av1",
    "libxvid": "mpeg4", "mpeg4": "mpeg4",
    "prores": "prores", "prores_ks": "prores", "prores_aw": "prores",
    "mpeg2video": "mpeg2video", "mpeg1video": "mpeg1video", "mjpeg": "mjpeg", "dvvideo": "dvvideo",
    "ffv1": "ffv1", "huffyuv": "huffyuv", "ffvhuff": "ffvhuff", "utvideo": "utvideo", "rawvideo": "rawvideo",
    "png": "png", "qtrle": "qtrle", "magicyuv": "magicyuv", "libtheora": "theora", "wmv1": "wmv1", "wmv2": "wmv2",
}
_HARDWARE_SUFFIX = re.compile(r"^(h264|hevc|av1|vp8|vp9|mpeg2|mjpeg)_(nvenc|qsv|vaapi|amf|videotoolbox|v4l2m2m|mf|omx)$")
# The deepest sample each encoder takes in 4:2:0 (others: 8 bits unless listed).
_MAX_DEPTH = {"libx264": 10, "libx265": 12, "libvpx-vp9": 12, "libsvtav1": 10, "libaom-av1": 12, "librav1e": 12,
              "hevc_nvenc": 10, "av1_nvenc": 10, "hevc_qsv": 10, "hevc_vaapi": 10, "av1_qsv": 10}
COMMON_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "mpeg4", "prores_ks", "ffv1")
_DISPLAY = {"h264": "H.264", "hevc": "HEVC", "vp8": "VP8", "vp9": "VP9", "av1": "AV1", "mpeg4": "MPEG-4 part 2",
            "prores": "ProRes", "mpeg2video": "MPEG-2", "mjpeg": "MJPEG", "dvvideo": "DV", "ffv1": "FFV1"}
_FOLLOW = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx-vp9", "av1": "libsvtav1"}


def display_name(codec: str) -> str:
    return _DISPLAY.get(codec, codec)


def codec_of_encoder(encoder: str) -> str | None:
    """The codec an encoder writes (``libx265`` -> ``hevc``); None for an encoder this table lacks."""
    name = encoder.lower()
    if name in _ENCODER_CODECS:
        return _ENCODER_CODECS[name]
    match = _HARDWARE_SUFFIX.match(name)
    if match:
        return {"mpeg2": "mpeg2video"}.get(match.group(1), match.group(1))
    return None


@dataclass(frozen=True)
class Container:
    """What one container holds. ``None`` for a kind: anything ffmpeg can put there."""

    name: str  # as people say it: "MP4", "WebM"
    video: frozenset[str] | None
    audio: frozenset[str] | None
    subtitles: frozenset[str]
    audio_encoder: str  # the best fit for audio it cannot hold
    text_subtitle: str | None  # what text subtitles become when their codec is not held
    video_encoders: tuple[str, ...]  # for codec: auto when the source's codec is not held: 8-bit, deeper

    def holds(self, kind: str, codec: str) -> bool:
        if kind == "video":
            return self.video is None or codec in self.video
        if kind == "audio":
            return self.audio is None or codec in self.audio
        return codec in self.subtitles


_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "alac", "mp2"})
_MKV_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle",
                            "dvb_subtitle", "dvb_teletext", "text"})
_MP4 = Container("MP4", frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"}), _MP4_AUDIO, frozenset({"mov_text"}),
                 "aac", "mov_text", ("libx264", "libx265"))
_MOV = Container("MOV", frozenset({"h264", "hevc", "prores", "mjpeg", "mpeg4", "dvvideo", "qtrle", "png"}),
                 _MP4_AUDIO - {"opus"} | {"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_f32le"},
                 frozenset({"mov_text"}), "aac", "mov_text", ("libx264", "libx265"))
_MKV = Container("Matroska", None, None, _MKV_SUBTITLES, "libopus", "srt", ("libx264", "libx265"))
_TS = Container("MPEG-TS", frozenset({"h264", "hevc", "mpeg2video"}),
                frozenset({"aac", "mp3", "mp2", "ac3", "eac3"}), frozenset({"dvb_subtitle"}), "aac", None,
                ("libx264", "libx265"))

CONTAINERS: dict[str, Container] = {
    "mp4": _MP4,
    "m4v": _MP4,
    "mov": _MOV,
    "3gp": Container("3GP", frozenset({"h264", "mpeg4", "h263"}), frozenset({"aac", "amr_nb", "amr_wb"}),
                     frozenset({"mov_text"}), "aac", "mov_text", ("libx264", "libx264")),
    "mkv": _MKV,
    "webm": Container("WebM", frozenset({"vp8", "vp9", "av1"}), frozenset({"opus", "vorbis"}), frozenset({"webvtt"}),
                      "libopus", "webvtt", ("libvpx-vp9", "libvpx-vp9")),
    "avi": Container("AVI", frozenset({"h264", "mpeg4", "msmpeg4v3", "mjpeg", "dvvideo", "ffv1", "huffyuv", "utvideo",
                                       "rawvideo"}),
                     frozenset({"mp3", "mp2", "ac3", "aac", "pcm_s16le", "pcm_u8", "pcm_s24le", "dts"}),
                     frozenset(), "libmp3lame", None, ("libx264", "libx264")),
    "ts": _TS,
    "mts": _TS,
    "m2ts": _TS,
    "flv": Container("FLV", frozenset({"h264"}), frozenset({"aac", "mp3"}), frozenset(), "aac", None,
                     ("libx264", "libx264")),
}


def container_of(extension: str) -> Container | None:
    return CONTAINERS.get(extension.lower().lstrip("."))


def follow_source(source_codec: str, *, bit_depth: int) -> str:
    """The encoder ``codec: auto`` picks for a source stream of ``source_codec``."""
    if source_codec in _FOLLOW:
        return _FOLLOW[source_codec]
    return "libx265" if bit_depth > 8 else "libx264"


def encoder_for_container(source_codec: str, *, bit_depth: int, container: str) -> str:
    """``codec: auto`` with an explicit container: the source's codec where it fits, else the container's own."""
    encoder = follow_source(source_codec, bit_depth=bit_depth)
    spec = container_of(container)
    codec = codec_of_encoder(encoder)
    if spec is None or codec is None or spec.holds("video", codec):
        return encoder
    if source_codec == "av1" and spec.holds("video", "av1"):
        return "libsvtav1"
    return spec.video_encoders[1 if bit_depth > 8 else 0]


def settings_problem(codec: str, container: str | None) -> str | None:
    """Why ``output.codec`` = ``codec`` cannot go into ``output.container`` = ``container``, as a sentence
    naming both settings; None when it can, when either is auto/null, or when these tables do not
    know the encoder or container (ffmpeg's trial encode in the plan judges those)."""
    if codec == AUTO or not container:
        return None
    ext = container.lower().lstrip(".")
    spec = container_of(ext)
    made = codec_of_encoder(codec)
    if spec is None or made is None or spec.holds("video", made):
        return None
    fits = [name for name in COMMON_ENCODERS if spec.holds("video", _ENCODER_CODECS[name])]
    hint = f"for .{ext} use {' or '.join(fits)}, or codec: auto" if fits else "use codec: auto"
    return (f"output.codec (--codec) {codec} writes {display_name(made)} video, which a .{ext} file cannot hold "
            f"(the container comes from output.container or the output file's extension); {hint}")


@dataclass(frozen=True)
class ContainerChoice:
    container: str  # extension without the dot
    reason: str | None  # why it is not the source's; None when it is


def subtitle_plan(codec: str, container: str) -> str | None:
    """``copy``, the encoder text subtitles are converted with, or None when ``container`` cannot carry them."""
    spec = container_of(container)
    if spec is None:
        return "copy"  # not known here: the trial mux decides
    if spec.holds("subtitle", codec):
        return "copy"
    if codec in TEXT_SUBTITLES and spec.text_subtitle:
        return spec.text_subtitle
    return None


def audio_plan(codec: str, container: str) -> str:
    """``copy``, or the encoder that re-encodes this audio into its best fit for ``container``."""
    spec = container_of(container)
    if spec is None or spec.holds("audio", codec):
        return "copy"
    return spec.audio_encoder


def choose_container(source_extension: str, *, video_codec: str | None, subtitles: Sequence[str]) -> ContainerChoice:
    """``container: null``: the source's container when it holds ``video_codec`` (the output's) and every
    subtitle stream, else ``mkv``. ``video_codec`` None: an encoder these tables do not know."""
    ext = source_extension.lower().lstrip(".")
    spec = container_of(ext)
    if spec is None:
        return ContainerChoice(FALLBACK_CONTAINER, f"midframe does not write .{ext or '(none)'} files")
    if video_codec is not None and not spec.holds("video", video_codec):
        return ContainerChoice(FALLBACK_CONTAINER, f"a .{ext} file cannot hold {video_codec} video")
    lost = [codec for codec in subtitles if subtitle_plan(codec, ext) is None]
    if lost and ext != FALLBACK_CONTAINER:
        return ContainerChoice(FALLBACK_CONTAINER, f"a .{ext} file cannot hold its {', '.join(lost)} subtitles")
    return ContainerChoice(ext, None)


def audio_bitrate(encoder: str, channels: int) -> str:
    """A transparent bitrate for re-encoded audio: per channel, within what the encoder allows."""
    channels = max(1, channels)
    per_channel = {"aac": 96, "libopus": 80, "libvorbis": 96, "libmp3lame": 160, "ac3": 107}.get(encoder, 96)
    ceiling = {"libmp3lame": 320, "ac3": 640}.get(encoder, 512)
    return f"{min(per_channel * channels, ceiling)}k"


def audio_encoder_for(encoder: str, channels: int) -> str:
    """MP3 has two channels at most: more go to AC-3 (which AVI also holds)."""
    return "ac3" if encoder == "libmp3lame" and channels > 2 else encoder


def video_tag(video_codec: str | None, container: str) -> str | None:
    """The sample entry HEVC needs in MP4/MOV to play on Apple devices and in browsers."""
    if video_codec == "hevc" and container.lower().lstrip(".") in ("mp4", "m4v", "mov", "3gp"):
        return "hvc1"
    return None


def join_bitstream_filter(video_codec: str | None, container: str) -> str | None:
    """AVI stores H.264 as Annex B; the segments (Matroska) store it length-prefixed."""
    if container.lower().lstrip(".") == "avi" and video_codec in ("h264", "hevc"):
        return f"{video_codec}_mp4toannexb"
    return None


def pix_fmt_for(requested: str, *, encoder: str, bit_depth: int) -> str:
    """The default 4:2:0 format raised to the source's bit depth (as far as the encoder goes); others as asked."""
    if requested != DEFAULT_PIX_FMT or bit_depth <= 8:
        return requested
    depth = min(10 if bit_depth <= 10 else 12, _MAX_DEPTH.get(encoder.lower(), 10))
    return f"yuv420p{depth}le"
