"""Tiled batched inference: tiled equals untiled for a small receptive field, blending, odd sizes, TTA, MC dropout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from imaging.infer import (
    DeviceUnavailableError,
    InferenceError,
    blend_window,
    dihedral_transforms,
    predict_tiled,
    predict_tiled_batch,
    resolve_device,
)


def _conv_net(kernel: int = 3, *, symmetric: bool = False, dropout: float = 0.0, seed: int = 0) -> nn.Module:
    """A tiny deterministic conv net: 1 → 4 → 3 channels; receptive radius ``kernel // 2`` per conv, 2 convs."""
    torch.manual_seed(seed)
    pad = kernel // 2
    layers: list[nn.Module] = [nn.Conv2d(1, 4, kernel, padding=pad), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    layers.append(nn.Conv2d(4, 3, kernel, padding=pad))
    net = nn.Sequential(*layers)
    if symmetric:  # kernels invariant under the 8 dihedral transforms → an equivariant model
        with torch.no_grad():
            for m in net:
                if isinstance(m, nn.Conv2d):
                    m.weight.copy_(torch.stack([f(m.weight) for f, _ in dihedral_transforms()]).mean(0))
    return net


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((h, w), dtype=np.float32)


def _untiled(net: nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        net.eval()
        logits = net(torch.from_numpy(image)[None, None])
    return torch.softmax(logits, dim=1)[0].numpy()


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("shape", [(100, 77), (64, 64), (131, 96)])
def test_tiled_equals_untiled(kernel: int, shape: tuple[int, int]) -> None:
    # two 3x3 convs reach 2 pixels: within the default halo of overlap // 4 = 4
    net = _conv_net(kernel)
    image = _image(*shape)
    pred = predict_tiled(net, image, tile=32, overlap=16, batch_size=3, device="cpu")
    ref = _untiled(net, image)
    assert pred.probs.shape == ref.shape and pred.probs.dtype == np.float32
    np.testing.assert_allclose(pred.probs, ref, atol=1e-4)
    assert pred.labels.dtype == np.uint8 and pred.labels.shape == shape
    assert (pred.labels == ref.argmax(0)).mean() > 0.999
    assert pred.uncertainty.shape == shape and not pred.uncertainty.any()


def test_halo_matters_when_the_receptive_field_crosses_tile_edges() -> None:
    net = _conv_net(3)
    image = _image(100, 77)
    ref = _untiled(net, image)
    no_halo = predict_tiled(net, image, tile=32, overlap=16, halo=0, device="cpu")
    assert np.abs(no_halo.probs - ref).max() > 1e-3  # tile edges saw zero padding and still carry weight
    wide = predict_tiled(net, image, tile=32, overlap=16, halo=8, device="cpu")
    np.testing.assert_allclose(wide.probs, ref, atol=1e-4)


def test_channels_last_off_and_batch_of_images_agree() -> None:
    net = _conv_net(3)
    a, b = _image(70, 50, 1), _image(40, 90, 2)
    together = predict_tiled_batch(net, [a, b], tile=32, overlap=16, batch_size=4, device="cpu")
    alone = predict_tiled(net, b, tile=32, overlap=16, batch_size=1, device="cpu", channels_last=False)
    np.testing.assert_allclose(together[1].probs, alone.probs, atol=1e-5)
    np.testing.assert_allclose(together[0].probs, _untiled(net, a), atol=1e-4)


@pytest.mark.parametrize(("tile", "overlap"), [(256, 32), (32, 16), (17, 5), (8, 0)])
def test_blend_window_positive(tile: int, overlap: int) -> None:
    w = blend_window(tile, overlap)
    assert w.shape == (tile,) and (w > 0).all() and w.max() <= 1.0
    np.testing.assert_allclose(w, w[::-1])


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (20, 300), (33, 3)])
def test_smaller_than_tile_and_odd_sizes(shape: tuple[int, int]) -> None:
    net = _conv_net(1)
    image = _image(*shape)
    pred = predict_tiled(net, image, tile=64, overlap=16, device="cpu")
    assert pred.probs.shape == (3, *shape)
    np.testing.assert_allclose(pred.probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(pred.probs, _untiled(net, image), atol=1e-4)  # 1x1 convs: padding cannot matter


def test_tta_symmetric_model_agrees_nonsymmetric_disagrees() -> None:
    image = _image(48, 40)
    sym = predict_tiled(_conv_net(3, symmetric=True), image, tile=32, overlap=8, device="cpu", tta=True)
    assert sym.uncertainty.max() < 1e-5
    asym = predict_tiled(_conv_net(3, seed=3), image, tile=32, overlap=8, device="cpu", tta=True)
    assert asym.uncertainty.mean() > 1e-4
    np.testing.assert_allclose(asym.probs.sum(0), 1.0, atol=1e-5)


def test_mc_dropout() -> None:
    net = _conv_net(3, dropout=0.3)
    net.train()
    image = _image(40, 40)
    pred = predict_tiled(net, image, tile=32, overlap=8, device="cpu", mc_samples=4)
    assert pred.uncertainty.mean() > 1e-4
    assert net.training and all(m.training for m in net.modules())  # modes restored
    again = predict_tiled(net, image, tile=32, overlap=8, device="cpu", mc_samples=4)
    np.testing.assert_array_equal(pred.probs, again.probs)  # seeded dropout masks
    plain = predict_tiled(net, image, tile=32, overlap=8, device="cpu")
    assert not plain.uncertainty.any() and net.training
    with pytest.raises(InferenceError, match="dropout"):
        predict_tiled(_conv_net(1), image, device="cpu", mc_samples=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_requested_without_cuda() -> None:
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        predict_tiled(_conv_net(1), _image(8, 8), device="cuda")
    assert resolve_device("auto").type == "cpu"


def test_bad_inputs() -> None:
    net = _conv_net(1)
    with pytest.raises(InferenceError, match="overlap"):
        predict_tiled(net, _image(8, 8), tile=16, overlap=16, device="cpu")
    with pytest.raises(InferenceError, match=r"\(H, W\)"):
        predict_tiled(net, np.zeros((2, 8, 8), np.float32), device="cpu")
    with pytest.raises(InferenceError, match="NaN"):
        predict_tiled(net, np.full((8, 8), np.nan, np.float32), device="cpu")
    with pytest.raises(InferenceError, match="device"):
        resolve_device("tpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_close_to_cpu() -> None:
    net = _conv_net(3)
    image = _image(96, 80)
    cpu = predict_tiled(net, image, tile=32, overlap=16, device="cpu")
    gpu = predict_tiled(net, image, tile=32, overlap=16, device="cuda", amp=True)
    np.testing.assert_allclose(gpu.probs, cpu.probs, atol=2e-2)
