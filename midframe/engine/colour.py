"""Colour: how the source's YUV samples become the model's RGB and back, and HDR metadata. Pure.

Both directions use the same matrix and range, taken from the source's tags (bt601, bt709,
bt2020, ...; limited or full range), and swscale's accurate rounding with full chroma
interpolation: without those flags the default fast path rounds down, and kept frames came back
about 1.3/255 darker. A source without a matrix tag gets the usual default by size (bt709 for HD
and larger, bt601 below; the report says which). Primaries and transfer need no conversion (the
output has the source's): they are only written as tags, so PQ and HLG samples pass through the
model unchanged in meaning.

Chroma: where the output is subsampled again (4:2:0, 4:2:2), decoding repeats each chroma
sample over the pixels it covers and encoding averages them (``area``), so a kept frame's chroma
comes back as it was; smooth upsampling (bicubic, lanczos) followed by any downsampling softens
it, which cost 0.1-0.2 dB on real footage. Where the output keeps full chroma (RGB, 4:4:4) the
decoded frame is final, so it is upsampled smoothly (bicubic, as ffmpeg does by default).

RGB sources (``gbr`` H.264 from libx264rgb, FFV1/VP9/Ut Video ``gbrp``, raw rgb24, PNG and
QuickTime RLE, palettes: ``has_rgb_samples``) decode to RGB without a matrix. Their YUV output gets
the usual matrix for their size and limited range, as a plain video has, and says so in its tags
(``Conversion.tag_space``): ffprobe's ``gbr`` tag names no YUV matrix, and an encoder given it as a
colour space fails; so is a YUV source whose tag names a matrix swscale lacks (``ycgco``). Gray
sources are YUV without chroma: their range is kept like any YUV source's.

HDR10 static metadata (mastering display, content light level) is read from the source's side
data and written back through the encoder's own parameters (x265 ``master-display``/``max-cll``,
SVT-AV1 ``mastering-display``/``content-light``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from typing import Any

SWS_FLAGS = "accurate_rnd+full_chroma_int"
EXACT_UPSAMPLE = "neighbor"  # chroma comes back as it was when the output is subsampled again
SMOOTH_UPSAMPLE = "bicubic"  # swscale's own; the output keeps full chroma: the decoded frame is what is seen
DOWNSAMPLE = "area"
# ffprobe's colour-space names -> the swscale matrix names of the scale filter.
SCALE_MATRIX = {
    "bt709": "bt709",
    "bt470bg": "bt601",
    "smpte170m": "bt601",
    "fcc": "fcc",
    "smpte240m": "smpte240m",
    "bt2020nc": "bt2020",
    "bt2020c": "bt2020",  # swscale has no constant-luminance path; the nc matrix is the nearest
}
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
RGB_SPACE = "gbr"  # ffprobe's colour space of RGB-coded streams
# swscale's matrix names -> the colour-space tag that names them (for the YUV outputs of RGB sources).
MATRIX_TAG = {"bt709": "bt709", "bt601": "smpte170m", "bt2020": "bt2020nc", "fcc": "fcc", "smpte240m": "smpte240m"}


def is_rgb_pix_fmt(pix_fmt: str) -> bool:
    name = pix_fmt.lower()
    return name.startswith(("gbr", "rgb", "bgr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr"))


def has_rgb_samples(pix_fmt: str, color_space: str | None) -> bool:
    """Whether a source's samples are RGB (RGB-coded, palette, Bayer, XYZ): no YUV matrix of its own."""
    name = pix_fmt.lower()
    return color_space == RGB_SPACE or is_rgb_pix_fmt(name) or name.startswith(("pal8", "bayer_", "xyz"))


def is_subsampled(pix_fmt: str) -> bool:
    name = pix_fmt.lower()
    return name.startswith(("yuv420", "yuvj420", "yuv422", "yuvj422", "nv12", "nv16", "nv21", "p010", "p016", "yuv411",
                            "yuv410", "yuv440", "yuvj440"))


@dataclass(frozen=True)
class Conversion:
    """The YUV <-> RGB mapping of one job: the same matrix and range both ways."""

    matrix: str  # swscale's name: bt601, bt709, bt2020, fcc, smpte240m
    full_range: bool
    assumed: bool = False  # the source has no matrix tag: chosen from its size
    upsample: str = SMOOTH_UPSAMPLE  # swscale's filter for chroma, decoding
    rgb_source: bool = False  # the matrix and range are the YUV output's alone (see has_rgb_samples)
    retag: bool = False  # the source's colour-space tag names no matrix swscale has (gbr, ycgco...)

    @property
    def tag_space(self) -> str | None:
        """The colour-space tag the output gets in place of the source's unusable one: the matrix used."""
        return MATRIX_TAG.get(self.matrix) if self.retag else None

    @property
    def range_name(self) -> str:
        return "pc" if self.full_range else "tv"

    def decode_filter(self, rgb_pix_fmt: str) -> str:
        """Source frames -> RGB (``rgb24`` or ``rgb48le``)."""
        return (f"scale=in_color_matrix={self.matrix}:in_range={self.range_name}:flags={self.upsample}+{SWS_FLAGS},"
                f"format={rgb_pix_fmt}")

    def encode_filter(self, pix_fmt: str) -> str:
        """RGB -> the output's pixel format (no matrix for RGB outputs such as gbrp)."""
        if is_rgb_pix_fmt(pix_fmt):
            return f"scale=flags={DOWNSAMPLE}+{SWS_FLAGS},format={pix_fmt}"
        return (f"scale=out_color_matrix={self.matrix}:out_range={self.range_name}:flags={DOWNSAMPLE}+{SWS_FLAGS},"
                f"format={pix_fmt}")

    def for_output(self, pix_fmt: str) -> Conversion:
        """This conversion with the chroma upsampling that suits an output in ``pix_fmt``."""
        exact = is_subsampled(pix_fmt)
        return replace(self, upsample=EXACT_UPSAMPLE if exact else SMOOTH_UPSAMPLE)

    def describe(self) -> str:
        return f"{self.matrix} matrix, {'full' if self.full_range else 'limited'} range"


def default_matrix(width: int, height: int) -> str:
    """What players assume for a video without a matrix tag: bt709 from HD up, bt601 below."""
    return "bt709" if width >= 1280 or height > 576 else "bt601"


def conversion_for(*, width: int, height: int, pix_fmt: str, color_space: str | None,
                   color_range: str | None) -> Conversion:
    if has_rgb_samples(pix_fmt, color_space):
        # swscale ignores matrix and range when it decodes RGB: they are the YUV output's alone.
        return Conversion(matrix=default_matrix(width, height), full_range=False, assumed=True, rgb_source=True,
                          retag=True)
    matrix = SCALE_MATRIX.get(color_space or "")
    full = color_range == "pc" or pix_fmt.lower().startswith("yuvj")
    if matrix is None:
        return Conversion(matrix=default_matrix(width, height), full_range=full, assumed=True,
                          retag=color_space is not None)
    return Conversion(matrix=matrix, full_range=full)


# --- HDR10 static metadata ------------------------------------------------------------------------


def _ratio(value: Any) -> Fraction | None:
    try:
        result = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return result


@dataclass(frozen=True)
class MasteringDisplay:
    """SMPTE ST 2086: display primaries and white point (CIE 1931 x, y) and luminance in cd/m²."""

    red: tuple[Fraction, Fraction]
    green: tuple[Fraction, Fraction]
    blue: tuple[Fraction, Fraction]
    white: tuple[Fraction, Fraction]
    min_luminance: Fraction
    max_luminance: Fraction


@dataclass(frozen=True)
class ContentLight:
    max_cll: int  # brightest pixel, cd/m²
    max_fall: int  # brightest frame average, cd/m²


@dataclass(frozen=True)
class HdrMetadata:
    mastering: MasteringDisplay | None = None
    light: ContentLight | None = None

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HdrMetadata:
        mastering = light = None
        if data.get("mastering"):
            m = data["mastering"]
            mastering = MasteringDisplay(red=_pair(m["red"]), green=_pair(m["green"]), blue=_pair(m["blue"]),
                                         white=_pair(m["white"]),
                                         min_luminance=Fraction(m["min_luminance"]),
                                         max_luminance=Fraction(m["max_luminance"]))
        if data.get("light"):
            light = ContentLight(max_cll=int(data["light"]["max_cll"]), max_fall=int(data["light"]["max_fall"]))
        return cls(mastering=mastering, light=light)


def _pair(value: list[str]) -> tuple[Fraction, Fraction]:
    return Fraction(value[0]), Fraction(value[1])


def _jsonable(value: Any) -> Any:
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def hdr_from_side_data(items: list[dict[str, Any]]) -> HdrMetadata | None:
    """HDR10 metadata from ffprobe's ``side_data_list`` entries (of a stream or of its first frame)."""
    mastering = light = None
    for item in items:
        kind = str(item.get("side_data_type", ""))
        if kind.startswith("Mastering display") and mastering is None:
            values = {key: _ratio(item.get(key)) for key in (
                "red_x", "red_y", "green_x", "green_y", "blue_x", "blue_y", "white_point_x", "white_point_y",
                "min_luminance", "max_luminance")}
            if all(value is not None for value in values.values()) and values["max_luminance"]:
                v: dict[str, Fraction] = values  # type: ignore[assignment]
                mastering = MasteringDisplay(
                    red=(v["red_x"], v["red_y"]), green=(v["green_x"], v["green_y"]), blue=(v["blue_x"], v["blue_y"]),
                    white=(v["white_point_x"], v["white_point_y"]), min_luminance=v["min_luminance"],
                    max_luminance=v["max_luminance"])
        elif kind.startswith("Content light level") and light is None:
            try:
                light = ContentLight(max_cll=int(item["max_content"]), max_fall=int(item["max_average"]))
            except (KeyError, TypeError, ValueError):
                pass
    if mastering is None and light is None:
        return None
    return HdrMetadata(mastering=mastering, light=light)


def _steps(point: tuple[Fraction, Fraction]) -> str:
    return f"({round(point[0] * 50000)},{round(point[1] * 50000)})"


def _decimal(point: tuple[Fraction, Fraction]) -> str:
    return f"({float(point[0]):.4f},{float(point[1]):.4f})"


def x265_params(hdr: HdrMetadata | None) -> list[str]:
    """``-x265-params`` entries: chromaticities in 0.00002 steps, luminance in 0.0001 cd/m²."""
    if hdr is None:
        return []
    params: list[str] = []
    if hdr.mastering is not None:
        m = hdr.mastering
        params.append(f"master-display=G{_steps(m.green)}B{_steps(m.blue)}R{_steps(m.red)}WP{_steps(m.white)}"
                      f"L({round(m.max_luminance * 10000)},{round(m.min_luminance * 10000)})")
    if hdr.light is not None:
        params.append(f"max-cll={hdr.light.max_cll},{hdr.light.max_fall}")
    return params + ["hdr10=1"]


def svtav1_params(hdr: HdrMetadata | None) -> list[str]:
    """``-svtav1-params`` entries (decimal chromaticities and cd/m²)."""
    if hdr is None:
        return []
    params = ["enable-hdr=1"]
    if hdr.mastering is not None:
        m = hdr.mastering
        params.append(f"mastering-display=G{_decimal(m.green)}B{_decimal(m.blue)}R{_decimal(m.red)}WP{_decimal(m.white)}"
                      f"L({float(m.max_luminance):.4f},{float(m.min_luminance):.4f})")
    if hdr.light is not None:
        params.append(f"content-light={hdr.light.max_cll},{hdr.light.max_fall}")
    return params
