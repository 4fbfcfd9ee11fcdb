"""LRP (each rule) against a plain forward + backward pass on the same batch of 32."""

import statistics

import pytest
import torch

from pmt_core.explain.lrp import RULES, explain
from pmt_core.model.network import PMTConvNet


def _model_and_batch(device):
    torch.manual_seed(0)
    model = PMTConvNet(n_paths=1200, n_classes=5).to(device).eval()
    return model, torch.randn(32, 1200, 32, device=device)


def _plain_backward(model, x):
    x = x.detach().requires_grad_(True)
    logits = model(x)
    logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
    return x.grad


def test_plain_forward_backward(benchmark, device, timed):
    model, x = _model_and_batch(device)
    benchmark.group = f"lrp-{device}"
    benchmark.pedantic(lambda: timed(lambda: _plain_backward(model, x), device),
                       rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(device=device, threads=torch.get_num_threads(), batch=32)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_lrp_rule(benchmark, device, rule, timed):
    model, x = _model_and_batch(device)

    def lrp():
        return explain(model, x, rule, device=device)

    def plain():
        return _plain_backward(model, x)

    timed(lrp, device), timed(plain, device)  # warm both
    lrp_s, plain_s = [], []
    for _ in range(3):  # interleaved: the ratio is what survives a busy runner
        lrp_s.append(timed(lrp, device))
        plain_s.append(timed(plain, device))
    benchmark.group = f"lrp-{device}"
    benchmark.pedantic(lambda: timed(lrp, device), rounds=3, iterations=1)
    benchmark.extra_info.update(
        device=device, rule=rule, threads=torch.get_num_threads(), batch=32,
        ratio_lrp_over_plain=statistics.median(lrp_s) / statistics.median(plain_s))
