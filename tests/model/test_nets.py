"""CAE shapes and parameter counts (Keras layouts), initialisation, clustering layer."""

import pytest
import torch
import torch.nn.functional as F

from model import nets
from model.nets import ClusteringLayer, DCECNet, FastConvTranspose2d, build_cae, load_cae, save_cae, soft_assign


def test_dcec_paint_net_matches_keras_shapes_and_parameter_count():
    cae = build_cae(128, 3)  # DCEC-Paint defaults: ELU, embedding 32, filters 32/64/128, kernels 5/5/3
    assert cae.feature_shape == (128, 16, 16)
    assert cae.embed.in_features == 32_768
    assert sum(p.numel() for p in cae.parameters()) == 2_384_931
    x = torch.rand(1, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    z, x_hat = cae(x)
    assert z.shape == (1, 32) and x_hat.shape == (1, 3, 128, 128)
    assert isinstance(cae.encoder[1], torch.nn.ELU)


def test_guo_mnist_net_uses_valid_last_conv():
    cae = build_cae(28, 1, embedding=10, activation="relu")
    assert cae.feature_shape == (128, 3, 3)  # 28 -> 14 -> 7 -> 3
    assert cae.embed.in_features == 1_152
    z, x_hat = cae(torch.rand(2, 1, 28, 28))
    assert z.shape == (2, 10) and x_hat.shape == (2, 1, 28, 28)
    assert isinstance(cae.encoder[1], torch.nn.ReLU)


def test_decoder_output_is_linear_and_embedding_has_no_activation():
    cae = build_cae(16, 3)
    assert isinstance(cae.decoder[-1], torch.nn.ConvTranspose2d)  # no activation after the last deconv
    x = torch.rand(4, 3, 16, 16)
    assert (cae.encode(x) < 0).any()  # a bounded activation (ELU >= -1, ReLU >= 0) would not allow this freely
    assert torch.allclose(cae.encode(x), cae.embed(cae.encoder(x)))


def test_keras_default_initialisation():
    cae = build_cae(16, 3, embedding=8)
    for module in cae.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            assert torch.count_nonzero(module.bias) == 0
            fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(module.weight)
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            assert module.weight.abs().max() <= bound
            assert module.weight.abs().max() > 0.5 * bound  # uniform over the whole range, not a tiny init


def test_config_rebuilds_the_same_architecture():
    cae = build_cae(32, 1, filters=(8, 16, 32), kernels=(5, 5, 3), embedding=6, activation="relu")
    clone = build_cae(**cae.config)
    assert [p.shape for p in clone.parameters()] == [p.shape for p in cae.parameters()]


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="activation"):
        build_cae(16, 3, activation="tanh")
    with pytest.raises(ValueError, match="3 conv layers"):
        build_cae(16, 3, filters=(8, 16))


def test_soft_assignment_matches_student_t_by_hand():
    z = torch.tensor([[0.0, 0.0]])
    centres = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # alpha = 1: kernel (1 + d^2)^-1 -> 1/2 and 1/5, normalised
    q = soft_assign(z, centres, alpha=1.0)
    assert torch.allclose(q, torch.tensor([[0.5 / 0.7, 0.2 / 0.7]]))


def test_clustering_layer_rows_sum_to_one_and_centres_load_in_place():
    layer = ClusteringLayer(n_clusters=5, dim=4)
    parameter = layer.centres
    new = torch.randn(5, 4)
    layer.set_centres(new)
    assert layer.centres is parameter and torch.equal(layer.centres.data, new)
    q = layer(torch.randn(7, 4))
    assert q.shape == (7, 5)
    assert torch.allclose(q.sum(dim=1), torch.ones(7))
    with pytest.raises(ValueError, match="shape"):
        layer.set_centres(torch.zeros(4, 4))


def test_dcec_net_outputs():
    net = DCECNet(build_cae(16, 3, embedding=8), n_clusters=3)
    q, x_hat, z = net(torch.rand(2, 3, 16, 16))
    assert q.shape == (2, 3) and x_hat.shape == (2, 3, 16, 16) and z.shape == (2, 8)
    assert any(p is net.clustering.centres for p in net.parameters())


# The decoder's layers of both nets (in, out, kernel, padding, output_padding, input size), plus odd ones.
TRANSPOSED_LAYERS = [(32, 3, 5, 2, 1, 64), (64, 32, 5, 2, 1, 32), (128, 64, 3, 1, 1, 16), (128, 64, 3, 0, 0, 3),
                     (32, 1, 5, 2, 1, 14), (8, 2, 3, 1, 1, 5), (8, 2, 4, 1, 0, 5)]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("in_ch, out_ch, kernel, padding, output_padding, size", TRANSPOSED_LAYERS)
def test_fast_transposed_convolution_computes_what_pytorchs_does(in_ch, out_ch, kernel, padding, output_padding,
                                                                 size, layout):
    """Forward (the sub-pixel form where out_ch is small) and all three gradients, in float64 so that only a
    different order of the same sums could differ."""
    torch.manual_seed(0)
    reference = torch.nn.ConvTranspose2d(in_ch, out_ch, kernel, 2, padding, output_padding=output_padding).double()
    fast = FastConvTranspose2d(in_ch, out_ch, kernel, 2, padding, output_padding=output_padding).double()
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(3, in_ch, size, size, dtype=torch.float64).contiguous(memory_format=layout)
    x_ref, x_fast = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y_fast = reference(x_ref), fast(x_fast)
    assert y_fast.shape == y_ref.shape and y_fast.is_contiguous(memory_format=layout)
    torch.testing.assert_close(y_fast, y_ref, rtol=0, atol=1e-12)
    grad = torch.randn_like(y_ref)
    y_ref.backward(grad)
    y_fast.backward(grad)
    torch.testing.assert_close(x_fast.grad, x_ref.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.bias.grad, reference.bias.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("in_ch, out_ch, kernel, padding, output_padding, size", TRANSPOSED_LAYERS)
def test_the_adjoint_form_computes_the_transposed_convolution(in_ch, out_ch, kernel, padding, output_padding, size,
                                                              layout):
    torch.manual_seed(0)
    x = torch.randn(3, in_ch, size, size, dtype=torch.float64).contiguous(memory_format=layout)
    weight = torch.randn(in_ch, out_ch, kernel, kernel, dtype=torch.float64)
    bias = torch.randn(out_ch, dtype=torch.float64)
    expected = F.conv_transpose2d(x, weight, bias, 2, padding, output_padding)
    got = nets.adjoint_conv_transpose(x, weight, bias, padding, expected.shape[-1])
    assert got.is_contiguous(memory_format=layout)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_bf16_layers_with_an_odd_output_take_the_adjoint_form_and_agree_with_fp32(monkeypatch):
    """Guo's first decoder layer (3 → 7 px) under bf16 autocast: forward and gradients within bf16 rounding of
    the fp32 layer's, and fp32 keeps oneDNN's deconvolution."""
    calls = []
    adjoint = nets.adjoint_conv_transpose
    monkeypatch.setattr(nets, "adjoint_conv_transpose", lambda *args: calls.append(args[0].dtype) or adjoint(*args))
    torch.manual_seed(0)
    layer = FastConvTranspose2d(128, 64, 3, 2, 0)
    torch.nn.init.uniform_(layer.bias, -2.0, 2.0)  # large enough that a lost or halved bias shows
    x = torch.randn(8, 128, 3, 3).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(8, 64, 7, 7)
    expected = layer(x)
    expected.backward(grad)
    expected_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    assert calls == []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x)
    got.backward(grad.bfloat16())
    assert calls == [torch.float32] and got.dtype == torch.bfloat16  # the adjoint casts to autocast's dtype
    torch.testing.assert_close(got.float(), expected, rtol=0.02, atol=0.03)
    for got_grad, expected_grad in zip((p.grad for p in layer.parameters()), expected_grads):
        assert got_grad.dtype == torch.float32
        torch.testing.assert_close(got_grad, expected_grad, rtol=0.05, atol=0.1)


def test_the_decoder_keeps_nn_convtranspose2d_parameters_so_saved_caes_load(tmp_path):
    cae = build_cae(28, 1, embedding=10, activation="relu")
    assert all(type(m) is FastConvTranspose2d for m in cae.decoder if isinstance(m, torch.nn.ConvTranspose2d))
    plain = {name: torch.nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                            output_padding=m.output_padding).state_dict()
             for name, m in cae.decoder.named_children() if isinstance(m, torch.nn.ConvTranspose2d)}
    state = cae.state_dict()
    for name, layer_state in plain.items():  # a checkpoint written when the decoder was nn.ConvTranspose2d
        state.update({f"decoder.{name}.{key}": value for key, value in layer_state.items()})
    save_cae(cae, tmp_path / "cae.pt")
    rebuilt = build_cae(**cae.config)
    rebuilt.load_state_dict(state)
    assert torch.equal(rebuilt.decoder[0].weight, plain["0"]["weight"])
    assert torch.equal(load_cae(tmp_path / "cae.pt").decoder[0].weight, cae.decoder[0].weight)


def test_the_fast_decoder_trains_under_bf16_autocast_with_fp32_gradients():
    cae = build_cae(28, 1, embedding=10, activation="relu").to(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, x_hat = cae(x)
        loss = torch.nn.functional.mse_loss(x_hat.float(), x)
    loss.backward()
    assert x_hat.dtype == torch.bfloat16
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in cae.decoder.parameters())


def test_narrow_decoder_layers_take_the_in_place_activation_after_them():
    """Layers with few output channels take the sub-pixel form; its output must not be a view, or the in-place
    ELU after it would be refused by autograd."""
    cae = build_cae(16, 3, filters=(4, 6, 8), embedding=5).to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    _, x_hat = cae(x)
    x_hat.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in cae.parameters())
