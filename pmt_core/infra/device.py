"""The one place where the compute device is chosen."""

from __future__ import annotations

import torch


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """Return the torch device to run on.

    Parameters
    ----------
    requested : str, torch.device or None
        ``None`` or ``"auto"`` picks CUDA when available, else the CPU. ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"`` ask for that device explicitly.

    Returns
    -------
    torch.device

    Raises
    ------
    RuntimeError
        If CUDA is asked for and no CUDA device is available.
    """
    if requested is None or str(requested) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(requested)!r} was requested but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
            "use --device cpu or run on a GPU runner"
        )
    if device.type not in ("cpu", "cuda"):
        raise RuntimeError(f"unsupported device {str(requested)!r}; use 'cpu' or 'cuda'")
    return device
