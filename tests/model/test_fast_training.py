"""The speed-ups of issue #8 keep the maths: in-place activations, fused Adam, bf16 autocast, and the glibc
allocator setting (which must actually change how freed memory is handled)."""

import copy
import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score
from torch import nn

from model import cluster, methods
from model.dcec import DCECConfig, fit_dcec
from model.nets import build_cae
from model.pretrain import PretrainConfig, train_cae
from model.runtime import adam, autocast_dtype

CPU = torch.device("cpu")
IS_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def images_u8(n=64, size=16, seed=0):
    """Two groups (dark, bright) of noisy RGB images: something a CAE can learn and DCEC can separate."""
    gen = torch.Generator().manual_seed(seed)
    dark = torch.randint(0, 90, (n // 2, size, size, 3), generator=gen)
    bright = torch.randint(160, 256, (n - n // 2, size, size, 3), generator=gen)
    return torch.cat([dark, bright]).to(torch.uint8).contiguous()


def out_of_place_copy(cae):
    """The same CAE with activations that allocate their output (the textbook form)."""
    twin = build_cae(**cae.config)
    twin.load_state_dict(cae.state_dict())
    for module in twin.modules():
        if isinstance(module, (nn.ELU, nn.ReLU)):
            module.inplace = False
    return twin


@pytest.mark.parametrize("activation", ["elu", "relu"])
def test_in_place_activations_give_the_same_outputs_and_gradients(activation):
    torch.manual_seed(0)
    cae = build_cae(16, 3, (4, 8, 8), (5, 5, 3), 4, activation)
    assert all(m.inplace for m in cae.modules() if isinstance(m, (nn.ELU, nn.ReLU)))
    twin = out_of_place_copy(cae)
    x = torch.rand(6, 3, 16, 16)
    results = []
    for net in (cae, twin):
        z, x_hat = net(x)
        F.mse_loss(x_hat, x).backward()
        results.append((z.detach(), x_hat.detach(), [p.grad.clone() for p in net.parameters()]))
    (z1, x1, g1), (z2, x2, g2) = results
    assert torch.allclose(z1, z2, atol=1e-6) and torch.allclose(x1, x2, atol=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(g1, g2))


def test_fused_adam_follows_the_same_update_rule_as_the_default_adam():
    torch.manual_seed(0)
    weights = [torch.randn(8, 5, requires_grad=True), torch.randn(5, requires_grad=True)]
    initial = [w.detach().clone() for w in weights]
    twins = [w.detach().clone().requires_grad_() for w in weights]
    fused, plain = adam(weights, 0.01), torch.optim.Adam(twins, lr=0.01)
    assert fused.param_groups[0]["fused"] is True  # the fast kernel is really in use on CPU
    inputs = torch.randn(20, 8)
    for _ in range(10):
        for params, optimizer in ((weights, fused), (twins, plain)):
            optimizer.zero_grad()
            (inputs @ params[0] + params[1]).pow(2).mean().backward()
            optimizer.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(weights, twins))
    assert not torch.allclose(weights[0], initial[0], atol=1e-3)  # and they did move, together


def test_mixed_precision_setting():
    assert autocast_dtype("auto", CPU) is None  # AVX2 CPUs: fp32
    assert autocast_dtype("off", CPU) is None
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    with pytest.raises(ValueError, match="model.mixed_precision 'fp8'"):
        autocast_dtype("fp8", CPU)


def test_the_precision_setting_reaches_the_dcec_runs():
    params = {"base": {"seed": 0},
              "model": {"k": 2, "embedding": 4, "filters": [4, 8, 8], "kernels": [5, 5, 3], "activation": "elu",
                        "device": "cpu", "compile": False, "mixed_precision": "bf16", "keep_freed_memory": False,
                        "eval_batch_size": 64},
              "cluster": {"batch_size": 16, "lr": 0.001, "maxiter": 8, "update_interval": 4, "tol": 0.001,
                          "kl_weight": 0.9, "recon_weight": 0.1, "kmeans_n_init": 2}}
    assert cluster.dcec_config(params).mixed_precision == "bf16"
    dcec = methods.get_method("dcec", params, "unused.pt")
    assert dcec.config(2, 0).mixed_precision == "bf16" and dcec.settings["mixed_precision"] == "bf16"
    params["model"]["mixed_precision"] = "auto"  # fp32 on this CPU: a different compare cache key
    assert methods.get_method("dcec", params, "unused.pt").settings["mixed_precision"] == "off"


def conv_output_dtypes(cae, inference_only=False):
    """Record the dtype of every convolution's output while the CAE runs (in inference mode only, if asked)."""
    seen = set()

    def record(module, inputs, output):
        if torch.is_inference_mode_enabled() or not inference_only:
            seen.add(output.dtype)
    for module in cae.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            module.register_forward_hook(record)
    return seen


def test_bf16_pretraining_is_equivalent_to_fp32():
    images = images_u8()
    losses, dtypes = {}, {}
    for setting in ("off", "bf16"):
        torch.manual_seed(0)
        cae = build_cae(16, 3, (8, 16, 16), (5, 5, 3), 8, "elu")
        dtypes[setting] = conv_output_dtypes(cae)
        records = []
        config = PretrainConfig(epochs=6, batch_size=16, lr=3e-3, seed=0, show_progress=False,
                                mixed_precision=setting)
        train_cae(cae, images, config, CPU, on_epoch=records.append)
        losses[setting] = np.array([r["loss"] for r in records])
    assert dtypes == {"off": {torch.float32}, "bf16": {torch.bfloat16}}  # autocast really ran the convs in bf16
    assert losses["bf16"][-1] < 0.5 * losses["bf16"][0]  # it learns ...
    np.testing.assert_allclose(losses["bf16"], losses["off"], rtol=0.05)  # ... the same curve within 5%


def test_bf16_dcec_finds_the_same_clusters_as_fp32():
    images = images_u8(n=96)
    torch.manual_seed(0)
    cae = build_cae(16, 3, (8, 16, 16), (5, 5, 3), 8, "elu")
    train_cae(cae, images, PretrainConfig(epochs=4, batch_size=16, lr=3e-3, show_progress=False), CPU)
    results, dtypes, predicted = {}, {}, {}
    for setting in ("off", "bf16"):
        watched = copy.deepcopy(cae)  # fit_dcec trains its own deep copy: the hooks go with it
        dtypes[setting] = conv_output_dtypes(watched)
        predicted[setting] = conv_output_dtypes(watched, inference_only=True)  # k-means init and the P passes
        config = DCECConfig(n_clusters=2, batch_size=16, maxiter=24, update_interval=8, tol=0.0, kmeans_n_init=2,
                            show_progress=False, mixed_precision=setting)
        results[setting] = fit_dcec(watched, images, config, CPU, labels=np.repeat([0, 1], 48))
    assert torch.bfloat16 in dtypes["bf16"] and dtypes["off"] == {torch.float32}
    # the P passes predict in bf16, the k-means initialisation's embedding stays fp32
    assert predicted == {"off": {torch.float32}, "bf16": {torch.float32, torch.bfloat16}}
    fp32, bf16 = results["off"], results["bf16"]
    assert adjusted_rand_score(fp32.assignments, bf16.assignments) > 0.9
    assert bf16.embedding.dtype == np.float32 and np.isfinite([h["loss"] for h in bf16.history[1:]]).all()
    np.testing.assert_allclose([h["loss"] for h in bf16.history[1:]], [h["loss"] for h in fp32.history[1:]],
                               rtol=0.1)


ALLOCATOR_PROBE = textwrap.dedent("""
    import sys, torch
    from model.runtime import keep_freed_memory
    applied = keep_freed_memory(sys.argv[1] == "on")
    page = 4096
    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * page / 2**20
    before = rss_mb()
    block = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
    del block
    print(applied, round(rss_mb() - before))
""")


@pytest.mark.skipif(not IS_GLIBC, reason="glibc malloc only")
def test_keep_freed_memory_keeps_a_freed_block_resident_instead_of_unmapping_it():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # glibc defaults to start from

    def probe(mode):
        out = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE, mode], capture_output=True, text=True,
                             check=True, timeout=120, env=env).stdout.split()
        return out[0] == "True", int(out[1])

    applied, kept_mb = probe("on")
    default_applied, default_mb = probe("off")
    assert applied and not default_applied
    assert kept_mb >= 60  # the 64 MB stay in the heap for the next step to reuse
    assert default_mb < 16  # glibc's default: mmapped, and unmapped on free
