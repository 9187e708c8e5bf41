"""IFNet exported from torch into OpenVINO's two graphs: the one step of the OpenVINO backend that needs torch.

``torch.export`` traces the same ``IFNet`` the torch backend runs, ``openvino.convert_model`` converts it,
and pre/post-processing steps put the integer frame layout inside the graphs: ``prepare`` takes a
decoded 1 x h x w x 3 uint8/uint16 frame, ``forward`` returns one. Only ``openvino_net`` imports this
module, and only when a frame size has no cached graphs yet, so a cached run never imports torch.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from midframe.engine.interpolators.rife.model import BackWarp, IFNet

TOP = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


class _PrepareGraph(nn.Module):
    def __init__(self, model: IFNet, *, pad: tuple[int, int], top: float) -> None:
        super().__init__()
        self.model, self.pad, self.unit = model, pad, 1.0 / top

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # 1 x 3 x h x w, 0..top
        return self.model.prepare(F.pad(image * self.unit, (0, self.pad[1], 0, self.pad[0])))


class _ForwardGraph(nn.Module):
    def __init__(self, model: IFNet, *, size: tuple[int, int], top: float, model_scale: float) -> None:
        super().__init__()
        self.model, self.size, self.top, self.model_scale = model, size, top, model_scale

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model(frame0, frame1, t, model_scale=self.model_scale)[:, :, : self.size[0], : self.size[1]]
        return torch.round(out.clamp(0.0, 1.0) * self.top)


def write_graphs(ov: Any, model: IFNet, folder: Path, *, key: dict[str, Any], size: tuple[int, int],
                 dtype: np.dtype, pad: tuple[int, int], model_scale: float) -> None:
    """``prepare.xml``, ``forward.xml`` (with their weights) and ``key.json`` in ``folder``."""
    from openvino.preprocess import PrePostProcessor

    top = TOP[np.dtype(dtype)]
    element = ov.Type.u8 if np.dtype(dtype) == np.uint8 else ov.Type.u16
    padded = (size[0] + pad[0], size[1] + pad[1])
    image = torch.zeros(1, 3, *size)
    frames = (torch.zeros(1, 7, *padded), torch.ones(1, 7, *padded), torch.full((1, 1, 1, 1), 0.5))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations, not ours
        # Tracing fills the warp's grid cache with placeholder tensors: trace a copy with its own cache.
        traced = copy.deepcopy(model)
        traced.warp = BackWarp()
        prepare = ov.convert_model(torch.export.export(_PrepareGraph(traced, pad=pad, top=top), (image,)))
        forward = ov.convert_model(torch.export.export(
            _ForwardGraph(traced, size=size, top=top, model_scale=model_scale), frames))
    prepare.reshape({prepare.inputs[0]: ov.PartialShape(list(image.shape))})
    forward.reshape({port: ov.PartialShape(list(x.shape)) for port, x in zip(forward.inputs, frames, strict=True)})
    steps = PrePostProcessor(prepare)  # the decoded frame as it comes: 1 x h x w x 3 integers
    steps.input().tensor().set_element_type(element).set_layout(ov.Layout("NHWC"))
    steps.input().model().set_layout(ov.Layout("NCHW"))
    steps.input().preprocess().convert_element_type(ov.Type.f32)
    prepare = steps.build()
    steps = PrePostProcessor(forward)  # and back: rounded values to the frame's dtype, channels last
    steps.output().model().set_layout(ov.Layout("NCHW"))
    steps.output().tensor().set_element_type(element).set_layout(ov.Layout("NHWC"))
    forward = steps.build()
    # Weights stay float32: save_model's default fp16 compression costs ~50 dB of agreement with torch.
    ov.save_model(prepare, str(folder / "prepare.xml"), compress_to_fp16=False)
    ov.save_model(forward, str(folder / "forward.xml"), compress_to_fp16=False)
    (folder / "key.json").write_text(json.dumps(key, indent=2) + "\n", encoding="utf-8")
