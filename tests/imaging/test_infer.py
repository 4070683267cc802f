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


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # the test machine is shared; several threads on tiny tensors only contend


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


# --- the optimized inference copy (BatchNorm folded) against the plain model --------------------------------------


def _bn_unet(dropout: float = 0.0, seed: int = 0) -> nn.Module:
    """A small project U-Net whose BatchNorm layers hold non-trivial running statistics and affine weights."""
    from imaging.models.unet import UNet

    torch.manual_seed(seed)
    net = UNet(in_channels=1, n_classes=5, base_channels=8, depth=2, dropout=dropout)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return net


def _plain_probs(net: nn.Module, image: np.ndarray) -> np.ndarray:
    """``model(x)`` of the unmodified model in eval mode, whole image: the reference."""
    net.eval()
    with torch.inference_mode():
        return torch.softmax(net(torch.from_numpy(image)[None, None]), dim=1)[0].numpy()


def test_inference_copy_folds_batchnorm_and_leaves_the_model_alone() -> None:
    from imaging.infer import inference_copy

    net = _bn_unet(dropout=0.2).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    copy_, applied = inference_copy(net)
    assert copy_ is not net and applied[0] == "fold_batchnorm(10)"  # 5 conv blocks x 2 conv+BN pairs
    assert not any(isinstance(m, nn.BatchNorm2d) for m in copy_.modules())
    assert sum(isinstance(m, nn.Dropout2d) for m in copy_.modules()) == 5  # dropout kept for MC sampling
    assert inference_copy(net)[0] is copy_  # cached while the weights are unchanged
    image = _image(64, 64)
    predict_tiled(net, image, tile=64, overlap=16, device="cpu", channels_last=True)
    assert net.training and all(m.training for m in net.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 10
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.is_contiguous() for p in net.parameters())  # not converted to channels_last in place


@pytest.mark.parametrize("channels_last", [True, False])
def test_optimized_path_equals_the_plain_model(channels_last: bool) -> None:
    net = _bn_unet()
    image = _image(64, 64, seed=4)
    ref = _plain_probs(net, image)
    # one window covering the image: the tiled path must reproduce model(x) itself
    one = predict_tiled(net, image, tile=64, overlap=16, device="cpu", channels_last=channels_last)
    np.testing.assert_allclose(one.probs, ref, atol=1e-5)
    assert (one.labels == ref.argmax(0)).mean() > 0.999
    # overlapping tiles, several images sharing batches: optimized == unoptimized
    images = [_image(100, 77, 1), _image(96, 160, 2)]
    fast = predict_tiled_batch(net, images, tile=32, overlap=16, batch_size=5, device="cpu")
    slow = predict_tiled_batch(net, images, tile=32, overlap=16, batch_size=5, device="cpu", optimize=False)
    for f, s in zip(fast, slow, strict=True):
        np.testing.assert_allclose(f.probs, s.probs, atol=1e-5)
        assert (f.labels == s.labels).mean() > 0.999


def test_optimized_path_with_mc_dropout_and_tta_matches() -> None:
    net = _bn_unet(dropout=0.3)
    image = _image(64, 48, seed=5)
    kw = {"tile": 32, "overlap": 16, "device": "cpu", "mc_samples": 3, "tta": True, "seed": 7}
    fast = predict_tiled(net, image, **kw)  # type: ignore[arg-type]
    slow = predict_tiled(net, image, optimize=False, **kw)  # type: ignore[arg-type]
    assert fast.uncertainty.mean() > 1e-4  # dropout is active in the folded copy
    np.testing.assert_allclose(fast.probs, slow.probs, atol=1e-5)  # the same dropout masks, BN in eval mode
    np.testing.assert_allclose(fast.uncertainty, slow.uncertainty, atol=1e-5)
    assert (fast.labels == slow.labels).mean() > 0.999


def test_inference_copy_follows_weight_changes() -> None:
    net = _bn_unet()
    image = _image(64, 64, seed=6)
    first = predict_tiled(net, image, tile=64, overlap=16, device="cpu")
    with torch.no_grad():  # an optimizer-like in-place update
        net.encoder[0][1].running_mean.add_(0.7)
    second = predict_tiled(net, image, tile=64, overlap=16, device="cpu")
    assert np.abs(second.probs - first.probs).max() > 1e-3
    np.testing.assert_allclose(second.probs, _plain_probs(net, image), atol=1e-5)
    net.head.bias.data[1] += 1.5  # a write through .data (no version bump)
    third = predict_tiled(net, image, tile=64, overlap=16, device="cpu")
    np.testing.assert_allclose(third.probs, _plain_probs(net, image), atol=1e-5)
    net.load_state_dict(_bn_unet(seed=9).state_dict())
    np.testing.assert_allclose(
        predict_tiled(net, image, tile=64, overlap=16, device="cpu").probs, _plain_probs(net, image), atol=1e-5
    )
