"""Training throughput against the machine's bound: achieved FLOP/s over GEMM and conv FLOP/s.

One process measures, side by side and alternating round by round (so that load on a
shared runner hits every figure alike):

* the training FLOPs of the real network at the ci input size (S1+S2: 1,200 paths x
  32 frames, batch 32), counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls and convolutions, forward and backward; element-wise work is not counted);
* ``achieved``: one epoch of :func:`pmt_core.model.training.train_model` on the ci
  split (what the ci profile runs on the CPU, where S1+S2 replicates train one after
  another), its counted FLOPs (validation pass included) over its wall time;
  ``achieved_steps``: bare training steps written like the trainer's inner loop, which
  leave out validation, batch gathering and set-up;
* two machine bounds at the same thread count and precision: ``gemm``, a dense square
  ``torch.matmul`` (2,048 on the CPU, 8,192 on CUDA: large enough to keep the cores
  busy); ``conv``, forward and backward of the network's largest layer (``conv1``,
  Conv1d(1,200, 150, 7) over 32 frames) at the same batch.

``extra_info`` holds FLOPs and FLOP/s of each and the ratios ``achieved_over_gemm``,
``achieved_over_conv`` (and the same for the bare steps); each time is the minimum over
repeats and rounds, the run least disturbed by other processes. It asserts nothing
about time. A one-line summary per case is printed at the end of the session.

On the CPU ``torch.matmul`` runs in MKL, whose code branch ``import pmt_core`` pins to
``MKL_CBWR=COMPATIBLE`` for identical bits on Intel and AMD (infra/arithmetic.py); on an
AMD EPYC that branch is several times slower than MKL's own choice, while the
convolutions run in oneDNN's kernels, which the pin leaves at AVX2. ``extra_info``
records the branch (``mkl_branch``); ``PMT_ARITHMETIC=native`` measures MKL's own.

CPU options (measured once, not switchable here): channels-last does not apply (it
needs rank-4 tensors; these are examples x paths x frames); oneDNN (``mkldnn``) is on
by default and runs the convolutions: switched off, a float32 step took 3.9-5.4x as
long on a 2-core AVX2 AMD EPYC, so the suite keeps it on. The ``bfloat16`` case
runs the bare steps and both bounds under ``torch.autocast`` and records its step time
over float32's, measured in the same round; on the CPU it is skipped unless the CPU has
AVX512-BF16 (without it bf16 is converted in software: a step took 17-22x float32's on that EPYC).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pmt_core.infra import arithmetic
from pmt_core.model.network import PMTConvNet
from pmt_core.model.training import TrainingConfig, class_weights, train_model

CLASSES = ("a", "b", "c", "d", "e")
#: The ci profile's S1+S2 split (see test_bench_training.py) and input size.
CI_TRAIN, CI_VAL, PATHS, FRAMES = 357, 119, 1200, 32
#: Square GEMM size per device type: enough work to keep every core (or SM) busy.
GEMM_N = {"cpu": 2048, "cuda": 8192}
#: Timed calls per round for the short measurements (steps, GEMM, conv).
REPEATS = 5
ROUNDS = 3


def _cpu_has_bf16() -> bool:
    # A private helper, hence the guard; get_cpu_capability() tops out at "AVX512"
    # and does not say whether the BF16 extension is there.
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe and probe())


def _precision_params():
    bf16_skip = pytest.mark.skipif(
        not _cpu_has_bf16(),
        reason="CPU lacks AVX512-BF16: a bf16-autocast step takes 17-22x a float32 "
               "one there (2-core AVX2 AMD EPYC), not a candidate",
    )
    return [pytest.param("float32", id="float32"),
            pytest.param("bfloat16", id="bfloat16", marks=bf16_skip)]


def _autocast(device: str, precision: str):
    if precision == "float32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def _count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _best(fn, device, timed, repeats=REPEATS) -> float:
    """Return the minimum wall seconds of ``repeats`` calls of ``fn``."""
    return min(timed(fn, device) for _ in range(repeats))


def _training_step(x, y, device, precision, config=TrainingConfig()):  # noqa: B008 - frozen
    """Return a function running one training step as the trainer's inner loop does.

    Same model, weighted loss, AdamW and gradient clipping as ``_train`` in
    pmt_core/model/training.py, on a fixed batch (no gather, no scheduler: neither
    has FLOPs worth counting).
    """
    torch.manual_seed(0)
    model = PMTConvNet(n_paths=x.shape[1], n_classes=len(CLASSES)).to(device).train()
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(y.cpu().numpy(), len(CLASSES)).to(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = loss_fn(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
        optimizer.step()

    return step


def _gemm(device, precision):
    n = GEMM_N[torch.device(device).type]
    generator = torch.Generator(device=device).manual_seed(0)
    dtype = torch.float32 if precision == "float32" else torch.bfloat16
    a = torch.randn(n, n, generator=generator, device=device).to(dtype)
    b = torch.randn(n, n, generator=generator, device=device).to(dtype)
    return lambda: torch.matmul(a, b)


def _conv(batch, device, precision):
    """Forward and backward of ``conv1`` (the largest layer); input gradient included,
    as in the network, where the input batch norm's parameters need it."""
    layer = PMTConvNet(n_paths=PATHS).conv1.to(device)
    x = torch.randn(batch, PATHS, FRAMES, device=device, requires_grad=True)

    def run():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        with _autocast(device, precision):
            out = layer(x)
        out.float().sum().backward()

    return run


@pytest.mark.parametrize("precision", _precision_params())
def test_training_throughput(benchmark, device, precision, timed, summary):
    rng = np.random.default_rng(0)
    x_train = rng.standard_normal((CI_TRAIN, PATHS, FRAMES)).astype(np.float32)
    x_val = rng.standard_normal((CI_VAL, PATHS, FRAMES)).astype(np.float32)
    y_train, y_val = np.arange(CI_TRAIN) % len(CLASSES), np.arange(CI_VAL) % len(CLASSES)
    config = TrainingConfig(max_epochs=1, patience=1)
    batch = config.batch_size
    x_batch = torch.as_tensor(x_train[:batch], device=device)
    y_batch = torch.as_tensor(y_train[:batch], device=device)

    def epoch():
        return train_model(x_train, y_train, x_val, y_val, CLASSES, config, device,
                           progress=False)

    # The trainer has no autocast switch (the suite's arithmetic is float32), so only
    # the float32 case times it; every case times float32 steps as its reference.
    with_trainer = precision == "float32"
    work = {"steps": _training_step(x_batch, y_batch, device, precision),
            "gemm": _gemm(device, precision),
            "conv": _conv(batch, device, precision)}
    if precision != "float32":
        work["steps_float32"] = _training_step(x_batch, y_batch, device, "float32")
    if with_trainer:
        work["trainer"] = epoch

    # Counted once, outside the timing (the counter slows the ops it watches); the
    # same calls also warm up allocator, kernels and oneDNN primitives.
    flops = {name: _count_flops(fn) for name, fn in work.items()}
    for fn in work.values():
        timed(fn, device)

    seconds = {name: [] for name in work}
    rounds = iter(range(1_000))

    def measure():
        # Rotate the order each round, so that a load spike does not favour one figure.
        names = list(work)
        shift = next(rounds) % len(names)
        for name in names[shift:] + names[:shift]:
            repeats = 1 if name == "trainer" else REPEATS
            seconds[name].append(_best(work[name], device, timed, repeats))

    benchmark.group = "throughput"
    benchmark.pedantic(measure, rounds=ROUNDS, iterations=1)
    best = {name: min(t) for name, t in seconds.items()}
    rate = {name: flops[name] / best[name] for name in work}
    achieved = "trainer" if with_trainer else "steps"
    info = {
        "device": device,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "paths": PATHS,
        "frames": FRAMES,
        "gemm_n": GEMM_N[torch.device(device).type],
        "flops_per_step": flops["steps"],
        "seconds_per_step": best["steps"],
        "flops_gemm": flops["gemm"],
        "flops_conv": flops["conv"],
        "achieved_flops_per_s": rate[achieved],
        "achieved_steps_flops_per_s": rate["steps"],
        "gemm_flops_per_s": rate["gemm"],
        "conv_flops_per_s": rate["conv"],
        "achieved_over_gemm": rate[achieved] / rate["gemm"],
        "achieved_over_conv": rate[achieved] / rate["conv"],
        "achieved_steps_over_gemm": rate["steps"] / rate["gemm"],
        "achieved_steps_over_conv": rate["steps"] / rate["conv"],
    }
    if with_trainer:
        info.update(flops_epoch=flops["trainer"], seconds_epoch=best["trainer"],
                    steps_per_epoch=CI_TRAIN // batch)
    else:
        info.update(seconds_per_step_float32=best["steps_float32"],
                    step_time_over_float32=best["steps"] / best["steps_float32"])
    # torch.matmul on the CPU is MKL's, whose speed depends on the branch that
    # pmt_core pins (infra/arithmetic.py); the convolutions are oneDNN's own kernels.
    cpu = arithmetic.state()
    info.update(mkl_branch=cpu["mkl_branch"], aten_capability=cpu["aten_capability"])
    if device.startswith("cuda"):
        # Convolutions may run in TF32 by default (cuDNN), matmuls not: say which.
        info.update(cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    benchmark.extra_info.update(info)

    g = 1e-9
    line = (
        f"training throughput [{device}, {precision}, {info['threads']} thread(s)]: "
        f"{flops['steps'] * g:.2f} GFLOP/step; achieved "
        f"{rate[achieved] * g:.1f} GFLOP/s ({'trainer epoch' if with_trainer else 'steps'})"
        + (f", bare steps {rate['steps'] * g:.1f}" if with_trainer else "")
        + f"; GEMM {rate['gemm'] * g:.1f}, conv1 {rate['conv'] * g:.1f} GFLOP/s; "
        f"achieved/GEMM {info['achieved_over_gemm']:.2f}, "
        f"achieved/conv {info['achieved_over_conv']:.2f}"
        + ("" if with_trainer else
           f"; step time over float32 {info['step_time_over_float32']:.2f}")
    )
    summary(line)

