"""IFNet v4.25, the flow network of RIFE (Practical-RIFE, MIT licence), for inference only.

The network estimates two flows (middle frame -> frame 0, middle frame -> frame 1) coarse to fine in five
blocks, backward-warps both frames with them and blends the two warps with a learned mask. The time of
the wanted frame enters as a constant input channel, so any ``0 < t < 1`` is one direct forward pass.

The published formulation brings every block's output back to full size and shrinks it again for the
next block, and warps all seven channels of both frames at full size before shrinking them. When every
block's scale is a power of two (``model_scale`` 1, 0.5 or 0.25) the same numbers come from far less
full-size work (``_forward_pow2``, exact up to float rounding; proven on real frames in the tests):

- bilinear shrinking by an even factor ``s`` (no antialias, ``align_corners=False``) reads exactly two
  pixels per axis with weights 1/2, so a warp followed by a shrink only needs the warp at those pixels,
  averaged 2x2; and the flow there is the previous outputs sampled at those pixel centres;
- enlarging by ``s`` then shrinking by ``s / 2`` is enlarging by 2 (the two pixels read sit on one side
  of a source pixel, where bilinear interpolation is linear), so block outputs go straight from one
  block's size to the next one's;
- the first convolution of each block takes its inputs as they come (frame 0's seven channels, frame
  1's, t, mask and features, flow) with its weights' input channels permuted to match, instead of
  slicing and re-concatenating full-size tensors.

The other scales run the published formulation (``_forward_general``).

Parameter names follow the published state dict (``encode.*``, ``block0.*`` .. ``block4.*``), so the
weights load with ``strict=True``. Training-only parts of that file (``teacher.*``, ``caltime.*``) have
no counterpart here and are dropped when the weights are converted.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from midframe.engine.interpolators.rife.geometry import pad_multiple

__all__ = ["BLOCK_SCALES", "BLOCK_WIDTHS", "BackWarp", "IFNet", "pad_multiple"]

# Channel widths of the five refinement blocks, coarsest first.
BLOCK_WIDTHS = (192, 128, 96, 64, 32)
# Downscale of each block's input at model_scale 1.0; divided by model_scale.
BLOCK_SCALES = (16, 8, 4, 2, 1)
FEATURE_CHANNELS = 4  # per frame, from the head encoder
# Each block predicts 13 channels: two flows (4), the blend mask logit (1), features for the next block (8).
_BLOCK_OUTPUTS = 13
_FIRST_BLOCK_INPUTS = 3 + 3 + FEATURE_CHANNELS + FEATURE_CHANNELS + 1  # two images, two features, t
_LATER_BLOCK_INPUTS = _FIRST_BLOCK_INPUTS + 1 + 8 + 4  # + mask logit, block features, flow
# The published input order is [image 0, image 1, features 0, features 1, t, ...]; frame by frame it is
# [image 0, features 0, image 1, features 1, t, ...]: for each grouped input, its published channel.
_GROUPED_ORDER = (0, 1, 2, 6, 7, 8, 9, 3, 4, 5, 10, 11, 12, 13, 14, *range(15, _LATER_BLOCK_INPUTS))


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2, inplace=True)


class Head(nn.Module):
    """Per-frame feature encoder: 3 -> 16 channels at half size, back to full size with 4 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, FEATURE_CHANNELS, 4, 2, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = _leaky(self.cnn0(image))
        x = _leaky(self.cnn1(x))
        x = _leaky(self.cnn2(x))
        return self.cnn3(x)


class ResConv(nn.Module):
    """3x3 convolution added back to its input, scaled by a learned per-channel ``beta``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _leaky(torch.addcmul(x, self.conv(x), self.beta))


def _downsample(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True))


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _shrink(x: torch.Tensor, step: int) -> torch.Tensor:
    """Bilinear shrinking by an even ``step`` (``align_corners=False``) as the mean of the two pixels per
    axis it reads: the same numbers without touching the other pixels."""
    if step == 1:
        return x
    start = step // 2 - 1
    return F.avg_pool2d(x[:, :, start:, start:], 2, step)


def _read_by_shrink(length: int, step: int) -> torch.Tensor:
    """The pixels that bilinear shrinking by an even ``step`` reads: ``step*i + step/2 - 1`` and the next."""
    first = torch.arange(length // step, dtype=torch.float32) * step + (step // 2 - 1)
    return torch.stack((first, first + 1.0), 1).reshape(-1)


def _sample_at(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Bilinear enlargement of ``x`` (``align_corners=False``) evaluated only at the given pixel centres;
    float32, since a half-precision position is off by up to half a pixel at 1080p."""
    grid = centres.expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


class _FullFlow:
    """The block flows enlarged to full size and summed; each block's output is added once."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.total: torch.Tensor | None = None
        self.counted = 0

    def __call__(self, outputs: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
        for out, scale in outputs[self.counted :]:
            term = _resize(out[:, :4], self.size) * float(scale)
            self.total = term if self.total is None else self.total + term
        self.counted = len(outputs)
        assert self.total is not None
        return self.total


def _total(terms: list[torch.Tensor]) -> torch.Tensor:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _power_of_two_scales(model_scale: float) -> bool:
    return all(float(s / model_scale).is_integer() and int(s / model_scale) & (int(s / model_scale) - 1) == 0
               for s in BLOCK_SCALES)


class IFBlock(nn.Module):
    """One refinement step: two stride-2 convolutions, eight residual ones, back up by 4 to 13 channels."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_downsample(in_channels, width // 2), _downsample(width // 2, width))
        self.convblock = nn.Sequential(*(ResConv(width) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * _BLOCK_OUTPUTS, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lastconv(self.convblock(self.conv0(x)))

    def forward_grouped(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` of inputs ordered frame by frame: ``[f0 (image, features), f1, t, rest]``."""
        first = cast(nn.Conv2d, cast(nn.Sequential, self.conv0[0])[0])  # built by _downsample
        order = _GROUPED_ORDER[: first.in_channels]
        x = _leaky(F.conv2d(x, first.weight[:, order], first.bias, 2, 1))
        return self.lastconv(self.convblock(self.conv0[1](x)))


class BackWarp:
    """Bilinear backward warp by a flow in pixels, with border padding; sampling grids cached per size.

    The sampling position is computed in float32 even when the network runs in float16: at 1080p a
    half-precision grid coordinate is off by up to half a pixel.
    """

    def __init__(self) -> None:
        self._grids: dict[tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self._subgrids: dict[tuple[int, int, torch.device, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def _grid(self, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (height, width, device)
        if key not in self._grids:
            ys = torch.linspace(-1.0, 1.0, height, device=device)
            xs = torch.linspace(-1.0, 1.0, width, device=device)
            grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), 0).unsqueeze(0)  # 1,2,H,W: x then y
            per_pixel = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], device=device).view(1, 2, 1, 1)
            self._grids[key] = (grid, per_pixel)
        return self._grids[key]

    def _sampled(self, height: int, width: int, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """For shrinking by ``step``: the warp grid at the two pixels per axis that bilinear shrinking
        reads, and those pixels' centres in ``align_corners=False`` coordinates (where enlarged block
        outputs are sampled)."""
        key = (height, width, device, step)
        if key not in self._subgrids:
            ys, xs = (_read_by_shrink(n, step).to(device) for n in (height, width))
            y, x = torch.meshgrid(ys, xs, indexing="ij")
            grid = torch.stack((x * (2.0 / (width - 1)) - 1.0, y * (2.0 / (height - 1)) - 1.0), 0).unsqueeze(0)
            centres = torch.stack(((2.0 * x + 1.0) / width - 1.0, (2.0 * y + 1.0) / height - 1.0), -1).unsqueeze(0)
            self._subgrids[key] = (grid, centres)
        return self._subgrids[key]

    def __call__(self, image: torch.Tensor, flow: torch.Tensor, *, step: int = 1) -> torch.Tensor:
        """``image`` warped by ``flow``; with ``step``, only at the pixels bilinear shrinking by ``step``
        reads (``flow`` given there too): ``2H/step x 2W/step``, to be averaged 2x2."""
        height, width = image.shape[-2], image.shape[-1]
        grid, per_pixel = self._grid(height, width, image.device)
        if step > 2:
            grid = self._sampled(height, width, step, image.device)[0]
        position = torch.addcmul(grid, flow.float(), per_pixel).permute(0, 2, 3, 1)
        source = image if image.dtype == torch.float32 else image.float()
        warped = F.grid_sample(source, position, mode="bilinear", padding_mode="border", align_corners=True)
        return warped.to(image.dtype)

    def centres(self, height: int, width: int, step: int, device: torch.device) -> torch.Tensor:
        return self._sampled(height, width, step, device)[1]


class IFNet(nn.Module):
    """The v4.25 flow network: ``prepare`` runs once per frame, ``forward`` once per wanted frame."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = Head()
        self.block0 = IFBlock(_FIRST_BLOCK_INPUTS, BLOCK_WIDTHS[0])
        self.block1 = IFBlock(_LATER_BLOCK_INPUTS, BLOCK_WIDTHS[1])
        self.block2 = IFBlock(_LATER_BLOCK_INPUTS, BLOCK_WIDTHS[2])
        self.block3 = IFBlock(_LATER_BLOCK_INPUTS, BLOCK_WIDTHS[3])
        self.block4 = IFBlock(_LATER_BLOCK_INPUTS, BLOCK_WIDTHS[4])
        self.warp = BackWarp()

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W in 0..1 -> N x 7 x H x W: the image and its encoder features, warped together."""
        return torch.cat((image, self.encode(image)), 1)

    def forward(
        self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor, *, model_scale: float = 1.0
    ) -> torch.Tensor:
        """The frame at time ``t`` between two ``prepare``d frames.

        ``frame0``/``frame1``: N x 7 x H x W with H and W multiples of ``pad_multiple(model_scale)``;
        ``t``: N x 1 x 1 x 1. Returns N x 3 x H x W, not clamped.
        """
        if _power_of_two_scales(model_scale):
            return self._forward_pow2(frame0, frame1, t.to(frame0.dtype), model_scale)
        return self._forward_general(frame0, frame1, t, model_scale)

    def _forward_pow2(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor, model_scale: float) -> torch.Tensor:
        """The published computation rearranged (see the module docstring); block scales 2^k only."""
        height, width = frame0.shape[-2], frame0.shape[-1]
        blocks = (self.block0, self.block1, self.block2, self.block3, self.block4)
        outputs: list[tuple[torch.Tensor, int]] = []  # each block's 13 channels at its own size, its scale
        full_flow = _FullFlow((height, width))
        for block, base_scale in zip(blocks, BLOCK_SCALES, strict=True):
            scale = int(base_scale / model_scale)
            small = (height // scale, width // scale)
            if not outputs:
                parts = [_shrink(frame0, scale), _shrink(frame1, scale)]
            else:
                if scale > 2:  # the flow only at the pixels the shrink reads
                    centres = self.warp.centres(height, width, scale, frame0.device)
                    flow = _total([_sample_at(out[:, :4], centres) * float(s) for out, s in outputs])
                else:
                    flow = full_flow(outputs)
                seen = [self.warp(frame0, flow[:, :2], step=scale), self.warp(frame1, flow[:, 2:4], step=scale)]
                if scale > 1:
                    seen = [F.avg_pool2d(x, 2) for x in seen]
                previous = outputs[-1][0]
                small_flow = _total([_resize(out[:, :4], small) * (s / scale) for out, s in outputs])
                parts = [*seen, _resize(previous[:, 4:], small), small_flow]
            parts.insert(2, t.expand(-1, 1, *small))
            outputs.append((block.forward_grouped(torch.cat(parts, 1)), scale))
        flow = full_flow(outputs)
        warped0, warped1 = self.warp(frame0[:, :3], flow[:, :2]), self.warp(frame1[:, :3], flow[:, 2:4])
        mask = _resize(outputs[-1][0][:, 4:5], (height, width))
        return torch.lerp(warped1, warped0, torch.sigmoid(mask))

    def _forward_general(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor, model_scale: float) -> torch.Tensor:
        """The published formulation, for any ``model_scale``.

        Bilinear resizing works channel by channel, so each block's inputs are shrunk before they are
        concatenated, never concatenated at full size; the result is the same as shrinking the stack.
        """
        count = frame0.shape[0]
        frames = torch.cat((frame0, frame1), 0)  # one warp call serves both frames
        t = t.to(frame0.dtype)
        blocks = (self.block0, self.block1, self.block2, self.block3, self.block4)
        flow = extra = None  # extra: the previous block's mask logit and features, at full size
        for block, base_scale in zip(blocks, BLOCK_SCALES, strict=True):
            scale = base_scale / model_scale
            out = self._refine(block, frames, flow, extra, t, scale)
            flow = out[:, :4] * scale if flow is None else flow + out[:, :4] * scale
            extra = out[:, 4:]
            del out  # extra keeps the part still needed
        assert flow is not None and extra is not None  # BLOCK_SCALES is not empty
        warped = self.warp(frames[:, :3], self._both(flow))
        weight = torch.sigmoid(extra[:, :1])
        return torch.lerp(warped[count:], warped[:count], weight)

    @staticmethod
    def _both(flow: torch.Tensor) -> torch.Tensor:
        """Flows to frame 0 and to frame 1 stacked along the batch, matching ``cat((frame0, frame1))``."""
        return torch.cat((flow[:, :2], flow[:, 2:4]), 0)

    def _refine(
        self,
        block: IFBlock,
        frames: torch.Tensor,
        flow: torch.Tensor | None,
        extra: torch.Tensor | None,
        t: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        """One block's 13 output channels at full size; its full-size temporaries die on return."""
        count = frames.shape[0] // 2
        full = (frames.shape[-2], frames.shape[-1])
        small = (round(full[0] / scale), round(full[1] / scale))
        seen = _resize(frames if flow is None else self.warp(frames, self._both(flow)), small)
        parts = [seen[:count, :3], seen[count:, :3], seen[:count, 3:], seen[count:, 3:], t.expand(-1, 1, *small)]
        if flow is not None and extra is not None:
            parts += [_resize(extra, small), _resize(flow, small) * (1.0 / scale)]
        return _resize(block(torch.cat(parts, 1)), full)
