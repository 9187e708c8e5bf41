"""What a farm worker offers (pure): one slot per device it renders on, and the resources it advertises.

A task asks for one ``midframe`` slot (plus the coordinator's ``farm.resources``), so a worker runs
as many segments at once as it has devices: one per CUDA device, else one on the CPU (whose threads
the one engine already uses).
"""

from __future__ import annotations

from collections.abc import Mapping

SLOT = "midframe"


def slot_devices(device: str, *, cuda_count: int) -> list[str]:
    """The devices a worker renders on for ``engine.device`` = ``device``, one task slot each."""
    if device == "auto":
        return [f"cuda:{index}" for index in range(cuda_count)] or ["cpu"]
    if device == "cuda":
        return [f"cuda:{index}" for index in range(max(cuda_count, 1))]
    return [device]


def worker_resources(devices: list[str], extra: Mapping[str, float]) -> dict[str, float]:
    """``{"midframe": slots, "GPU": CUDA devices}``, then ``farm.resources`` on top."""
    resources: dict[str, float] = {SLOT: float(len(devices))}
    gpus = sum(device.startswith("cuda") for device in devices)
    if gpus:
        resources["GPU"] = float(gpus)
    resources.update({name: float(amount) for name, amount in extra.items()})
    return resources


def task_resources(required: Mapping[str, float]) -> dict[str, float]:
    """What one segment needs: a slot, and ``farm.resources`` of the coordinator (e.g. ``GPU: 1``)."""
    return {SLOT: 1.0, **{name: float(amount) for name, amount in required.items()}}
