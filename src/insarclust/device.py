"""Pick the torch device from the config value (``auto`` = CUDA when present)."""
from __future__ import annotations

import logging
import os

log = logging.getLogger("insarclust.device")
_logged: set = set()


def _slurm_job_without_gpu() -> bool:
    """Inside a SLURM job that was allocated no GPU (SLURM sets CUDA_VISIBLE_DEVICES and
    SLURM_JOB_GPUS for a job given one)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return False
    return not any(os.environ.get(v, "").strip() for v in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS",
                                                           "SLURM_STEP_GPUS"))


def resolve_device(device: str = "auto") -> str:
    """``auto``: CUDA when torch finds a GPU, except in a SLURM job allocated none."""
    import torch

    if device in (None, "auto"):
        chosen = "cuda" if torch.cuda.is_available() else "cpu"
        if chosen == "cuda" and _slurm_job_without_gpu():
            # a CPU job on a GPU node whose GPUs the cluster does not hide from it: cuda:0 is
            # another job's GPU
            chosen = "cpu"
            if "slurm-cpu" not in _logged:
                _logged.add("slurm-cpu")
                log.info("SLURM job %s was given no GPU (no CUDA_VISIBLE_DEVICES or SLURM_JOB_GPUS): "
                         "running on CPU although the node has one", os.environ["SLURM_JOB_ID"])
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        if chosen == "cpu" and visible and visible not in ("-1", "NoDevFiles") and "fallback" not in _logged:
            # the scheduler gave this job a GPU that torch cannot use: say so, not just "cpu"
            _logged.add("fallback")
            log.warning("CUDA_VISIBLE_DEVICES=%s names a GPU, but torch %s (CUDA build: %s) finds none: "
                        "running on CPU. A CPU build of torch (a conda env solved where no GPU driver was "
                        "seen, see docs/cluster.md) or a driver older than the build's CUDA",
                        visible, torch.__version__, torch.version.cuda)
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device '{device}' requested but CUDA is not available; use device: auto or cpu")
    else:
        chosen = device
        index = chosen.partition(":")[2]
        if chosen.startswith("cuda") and index.isdigit() and int(index) >= torch.cuda.device_count():
            raise RuntimeError(f"device '{device}' requested but this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 ...); use device: auto, "
                               "cuda or cuda:<n> below that count")
    if chosen not in _logged:  # provenance reads the device of each stage from its log
        _logged.add(chosen)
        name = torch.cuda.get_device_name(chosen) if chosen.startswith("cuda") else "cpu"
        log.info("torch device: %s (%s), torch %s", chosen, name, torch.__version__)
    return chosen
