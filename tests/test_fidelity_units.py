"""The pure parts of fidelity: colour conversions and HDR parameters, nominal rates, the output check."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from midframe.config import EngineConfig
from midframe.engine import colour, rates
from midframe.engine.plan import build_timeline
from midframe.engine.probe import StreamSpan
from midframe.engine.verify import Expected, KeptStream, problems
from midframe.engine.videoinfo import VideoInfo
from midframe.engine.writer import EncodeSpec

# --- colour ----------------------------------------------------------------------------------------


def test_the_conversion_follows_the_tags_else_the_size():
    tagged = colour.conversion_for(width=320, height=180, pix_fmt="yuv420p", color_space="bt709", color_range="tv")
    assert tagged == colour.Conversion("bt709", False) and not tagged.assumed
    assert colour.conversion_for(width=1920, height=1080, pix_fmt="yuv420p", color_space="smpte170m",
                                 color_range=None).matrix == "bt601"
    assert colour.conversion_for(width=3840, height=2160, pix_fmt="yuv420p10le", color_space="bt2020nc",
                                 color_range="tv").matrix == "bt2020"
    hd = colour.conversion_for(width=1280, height=720, pix_fmt="yuv420p", color_space=None, color_range=None)
    sd = colour.conversion_for(width=720, height=576, pix_fmt="yuv420p", color_space=None, color_range=None)
    assert (hd.matrix, hd.assumed, sd.matrix, sd.assumed) == ("bt709", True, "bt601", True)
    assert colour.conversion_for(width=640, height=480, pix_fmt="yuvj420p", color_space=None, color_range=None).full_range
    assert colour.conversion_for(width=640, height=480, pix_fmt="yuv420p", color_space="bt709",
                                 color_range="pc").range_name == "pc"


def test_both_directions_use_the_same_matrix_accurate_rounding_and_exact_chroma():
    conversion = colour.Conversion("bt601", True).for_output("yuv420p")
    decode, encode = conversion.decode_filter("rgb24"), conversion.encode_filter("yuv420p")
    assert decode == ("scale=in_color_matrix=bt601:in_range=pc:flags=neighbor+accurate_rnd+full_chroma_int,"
                      "format=rgb24")
    assert encode == ("scale=out_color_matrix=bt601:out_range=pc:flags=area+accurate_rnd+full_chroma_int,"
                      "format=yuv420p")
    # A full-chroma output is what people see: its chroma is upsampled smoothly, and RGB needs no matrix.
    assert "flags=bicubic+" in conversion.for_output("gbrp").decode_filter("rgb48le")
    assert "matrix" not in conversion.encode_filter("gbrp16le")


MASTERING = {"side_data_type": "Mastering display metadata", "red_x": "34000/50000", "red_y": "16000/50000",
             "green_x": "13250/50000", "green_y": "34500/50000", "blue_x": "7500/50000", "blue_y": "3000/50000",
             "white_point_x": "15635/50000", "white_point_y": "16450/50000", "min_luminance": "50/10000",
             "max_luminance": "10000000/10000"}
LIGHT = {"side_data_type": "Content light level metadata", "max_content": 1000, "max_average": 400}


def test_hdr10_metadata_is_read_and_written_for_x265_and_svt_av1():
    hdr = colour.hdr_from_side_data([{"side_data_type": "H.26[45] User Data Unregistered SEI message"}, MASTERING, LIGHT])
    assert hdr is not None and hdr.light == colour.ContentLight(1000, 400)
    assert hdr.mastering.max_luminance == 1000 and hdr.mastering.min_luminance == Fraction(1, 200)
    assert colour.x265_params(hdr) == [
        "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)",
        "max-cll=1000,400", "hdr10=1"]
    assert colour.svtav1_params(hdr) == [
        "enable-hdr=1",
        "mastering-display=G(0.2650,0.6900)B(0.1500,0.0600)R(0.6800,0.3200)WP(0.3127,0.3290)L(1000.0000,0.0050)",
        "content-light=1000,400"]
    assert colour.HdrMetadata.from_json(hdr.to_json()) == hdr
    assert colour.hdr_from_side_data([{"side_data_type": "Display Matrix", "rotation": 90}]) is None
    assert colour.x265_params(None) == [] and colour.svtav1_params(None) == []


def test_x264_and_x265_are_paced_at_the_source_rate_and_tell_the_real_one():
    spec = EncodeSpec(width=64, height=48, fps=Fraction(60000, 1001), input_pix_fmt="rgb24", codec="libx264",
                      pace_fps=Fraction(30000, 1001))
    args = spec.codec_args()
    assert args[args.index("-x264-params") + 1] == "force-cfr=1:fps=30000/1001"
    assert args[args.index("-bsf:v") + 1] == "h264_metadata=tick_rate=120000/1001"
    hevc = EncodeSpec(width=64, height=48, fps=Fraction(50), input_pix_fmt="rgb48le", codec="libx265",
                      pix_fmt="yuv420p10le", pace_fps=Fraction(25), encoder_params=("hdr10=1",))
    args = hevc.codec_args()
    assert args[args.index("-x265-params") + 1] == "log-level=error:fps=25/1:hdr10=1"
    assert args[args.index("-bsf:v") + 1] == "hevc_metadata=tick_rate=50/1"
    assert "-bsf:v" not in EncodeSpec(width=64, height=48, fps=Fraction(50), input_pix_fmt="rgb24",
                                      codec="libvpx-vp9", pace_fps=Fraction(25)).codec_args()
    assert EncodeSpec.from_json(hevc.to_json()) == hevc


# --- nominal rates ---------------------------------------------------------------------------------

RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(50),
         Fraction(60000, 1001), Fraction(60)]
TIME_BASES = [Fraction(1, 1000), Fraction(1, 90000), Fraction(1, 12800), Fraction(1, 15360), None]  # None: 1/rate


def _grid(rate: Fraction, time_base: Fraction, slots: list[int]) -> list[int]:
    return [round(slot / rate / time_base) for slot in slots]


@st.composite
def gappy_grids(draw):
    rate = draw(st.sampled_from(RATES))
    time_base = draw(st.sampled_from(TIME_BASES)) or 1 / rate
    assume((1 / (rate * time_base)).denominator == 1 or time_base <= Fraction(1, 1000))
    length = draw(st.integers(20, 300))
    dropped = draw(st.sets(st.integers(1, length - 2), max_size=max(1, length // 10)))
    slots = [slot for slot in range(length) if slot not in dropped]
    return rate, time_base, slots


@settings(max_examples=150, deadline=None)
@given(gappy_grids())
def test_constant_rate_with_dropped_frames_keeps_its_nominal_rate(grid):
    rate, time_base, slots = grid
    pts = _grid(rate, time_base, slots)
    # ffprobe declares a rate (r_frame_rate); a few dozen frames on a millisecond clock cannot tell
    # 24 from 24000/1001 by themselves (the long case below can).
    found = rates.timing(pts=pts, last_duration=0, time_base=time_base, declared_rate=rate)
    gaps = len(slots) != slots[-1] + 1
    assert found.vfr == gaps
    if gaps:
        assert found.nominal_fps == rate
    else:
        assert found.r_frame_rate == rate
    # --factor 2 gives exactly twice that rate, and the source's duration.
    info = _info(found, time_base)
    timeline = build_timeline(info, EngineConfig(name="blend", factor=2))
    assert timeline.fps_out == 2 * rate
    assert timeline.frames_out == round(found.duration * 2 * rate)


@settings(max_examples=100, deadline=None)
@given(rate=st.sampled_from(RATES), length=st.integers(30, 200), seed=st.randoms(use_true_random=False))
def test_true_variable_rate_has_no_nominal_rate(rate, length, seed):
    # Frames wander off any grid by up to 45 % of a frame (a phone's screen recording, a webcam).
    time_base = Fraction(1, 90000)
    times = [Fraction(i) / rate + Fraction(seed.randint(-45, 45), 100) / rate for i in range(length)]
    times = sorted(set(times))
    pts = [round(t / time_base) for t in times]
    assume(sum(abs(t * rate - round(t * rate)) > Fraction(1, 5) for t in times) > length // 4)
    found = rates.timing(pts=[p - pts[0] for p in pts], last_duration=0, time_base=time_base, declared_rate=None)
    assert found.vfr and found.nominal_fps is None


@pytest.mark.parametrize("rate", [Fraction(24000, 1001), Fraction(24), Fraction(30000, 1001), Fraction(25)])
def test_without_a_declared_rate_a_long_run_finds_it(rate):
    slots = [slot for slot in range(600) if slot % 97 != 50]
    pts = _grid(rate, Fraction(1, 1000), slots)
    found = rates.timing(pts=pts, last_duration=0, time_base=Fraction(1, 1000), declared_rate=None)
    assert found.vfr and found.nominal_fps == rate
    steady = rates.timing(pts=_grid(rate, Fraction(1, 1000), list(range(600))), last_duration=0,
                          time_base=Fraction(1, 1000), declared_rate=None)
    assert not steady.vfr and steady.r_frame_rate == rate


def test_the_avi_with_one_skipped_frame():
    # AVI counts frames: one index entry missing is one dropped frame, not rounding.
    pts = [0, *range(2, 51)]
    found = rates.timing(pts=pts, last_duration=1, time_base=Fraction(1, 25), declared_rate=Fraction(25))
    assert found.vfr and found.nominal_fps == 25 and found.duration == Fraction(51, 25)
    assert build_timeline(_info(found, Fraction(1, 25)), EngineConfig(name="blend", factor=2)).fps_out == 50
    # Evenly spaced: constant, whatever the rounding of a millisecond time base.
    ntsc = [round(Fraction(i * 1001, 30000) * 1000) for i in range(100)]
    assert not rates.is_vfr(ntsc, Fraction(1, 1000))
    assert rates.snap_rate(Fraction(2997, 100)) == Fraction(30000, 1001)


def _info(found: rates.Timing, time_base: Fraction) -> VideoInfo:
    return VideoInfo(
        path=Path("x.mkv"), format_name="matroska", codec="h264", width=64, height=48,
        r_frame_rate=found.r_frame_rate, avg_frame_rate=found.avg_frame_rate, frame_count=len(found.pts),
        duration=found.duration, time_base=time_base, pts=found.pts, first_pts=Fraction(0), start_time=Fraction(0),
        vfr=found.vfr, pix_fmt="yuv420p", bit_depth=8, rotation=0, color_range=None, color_space=None,
        color_transfer=None, color_primaries=None, has_b_frames=False, video_index=0, audio=(), subtitles=(),
        size_bytes=1, nominal_fps=found.nominal_fps,
    )


# --- the check before publishing -----------------------------------------------------------------------

F = Fraction


def span(kind: str, start, end, *, packets=10, first=None, last=None, codec="aac", longest=Fraction(1, 50)) -> StreamSpan:
    return StreamSpan(index=0, kind=kind, codec=codec, first=F(first if first is not None else start),
                      last=F(last if last is not None else end), start=F(start), end=F(end), packets=packets,
                      longest=longest)


EXPECTED = Expected(frames=100, fps=F(50), streams=(
    KeptStream("audio", "aac", start_offset=F(0), end_offset=F(0)),
    KeptStream("subtitle", None, None, None),
))


def test_a_matching_output_passes():
    found = [span("video", 0, 2, packets=100, codec="h264"), span("audio", 0, 2), span("subtitle", 0, 1, codec="srt")]
    assert problems(EXPECTED, found) == ([], True)


def test_each_mismatch_is_named_with_its_figures():
    short = [span("video", 0, F(198, 100), packets=99, codec="h264"), span("audio", 0, 2), span("subtitle", 0, 1)]
    issues, video_ok = problems(EXPECTED, short)
    assert not video_ok and "99 video frames, not the planned 100" in issues[0]
    drifted = [span("video", 0, 2, packets=100, codec="h264"), span("audio", F(1, 5), F(11, 5)),
               span("subtitle", 0, 1)]
    issues, video_ok = problems(EXPECTED, drifted)
    assert video_ok and len(issues) == 2 and "starts 0.200 s away" in issues[0] and "ends 0.200 s away" in issues[1]
    lost = [span("video", 0, 2, packets=100, codec="h264"), span("audio", 0, 2)]
    assert "not the planned ['audio', 'subtitle']" in problems(EXPECTED, lost)[0][0]
    other = [span("video", 0, 2, packets=100, codec="h264"), span("audio", 0, 2, codec="mp3"), span("subtitle", 0, 1)]
    assert "is mp3, not the copied aac" in problems(EXPECTED, other)[0][0]


def test_a_copied_stream_is_timed_by_its_packets_a_re_encoded_one_by_what_plays():
    # Copied: the priming packet (first) and last packet match although the stored lengths differ.
    copied = Expected(frames=100, fps=F(50), streams=(KeptStream("audio", "aac", F(-1, 48), F(-1, 50)),))
    found = [span("video", 0, 2, packets=100, codec="h264"), span("audio", 0, F(2021, 1000), first=F(-1, 48),
                                                                  last=F(99, 50))]
    assert problems(copied, found) == ([], True)
    # Re-encoded: one audio packet of slack on top of the output frame.
    encoded = Expected(frames=100, fps=F(50), streams=(KeptStream("audio", None, F(0), F(0), copied=False,
                                                                  slack=F(1024, 48000)),))
    assert problems(encoded, [span("video", 0, 2, packets=100, codec="h264"),
                              span("audio", 0, F(2030, 1000), longest=F(1024, 44100))]) == ([], True)
    late = problems(encoded, [span("video", 0, 2, packets=100, codec="h264"), span("audio", F(1, 10), 2)])
    assert "starts 0.100 s away" in late[0][0]


@pytest.mark.parametrize("length", [F(2), F(2) - F(1, 100), F(2) + F(1, 100)])
def test_the_video_may_last_within_one_frame_of_the_plan(length):
    found = [span("video", 0, length, packets=100, codec="h264"), span("audio", 0, 2), span("subtitle", 0, 1)]
    assert problems(EXPECTED, found)[1]
