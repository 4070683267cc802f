from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from imaging.models import UNet, UNetConfig


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # the test machine is shared; several threads on tiny tensors only contend


@pytest.mark.parametrize(
    ("depth", "h", "w", "norm"),
    [(1, 16, 24, "batch"), (2, 32, 64, "group"), (3, 24, 48, "batch"), (4, 32, 48, "group")],
)
def test_output_shape(depth: int, h: int, w: int, norm: str) -> None:
    model = UNetConfig(n_classes=3, base_channels=4, depth=depth, norm=norm).build()  # type: ignore[arg-type]
    out = model(torch.randn(2, 1, h, w))
    assert out.shape == (2, 3, h, w)


def test_in_channels_and_bad_size() -> None:
    model = UNet(in_channels=3, n_classes=2, base_channels=4, depth=2)
    assert model(torch.randn(1, 3, 8, 12)).shape == (1, 2, 8, 12)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 4"):
        model(torch.randn(1, 3, 10, 12))


def test_dropout_active_in_train_mode_and_mc_dropout() -> None:
    torch.manual_seed(0)
    model = UNet(n_classes=2, base_channels=4, depth=2, dropout=0.5)
    x = torch.randn(2, 1, 16, 16)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    model.enable_mc_dropout()
    assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(model(x), model(x))


def test_no_dropout_is_deterministic_in_train_mode() -> None:
    model = UNet(n_classes=2, base_channels=4, depth=1, norm="group")
    x = torch.randn(1, 1, 8, 8)
    assert torch.equal(model(x), model(x))


def test_frozen_encoder_keeps_batchnorm_stats() -> None:
    model = UNet(n_classes=2, base_channels=4, depth=1)
    model.set_encoder_trainable(False)
    model.train()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model(torch.randn(2, 1, 8, 8) * 5 + 3)
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())
    assert all(not p.requires_grad for p in model.encoder_parameters())


configs = st.builds(
    UNetConfig,
    in_channels=st.integers(1, 4),
    n_classes=st.integers(2, 8),
    base_channels=st.integers(1, 32),
    depth=st.integers(1, 6),
    dropout=st.floats(0.0, 0.9),
    norm=st.sampled_from(["batch", "group"]),
)


@settings(max_examples=50, deadline=None)
@given(configs)
def test_config_round_trip(cfg: UNetConfig) -> None:
    assert UNetConfig.model_validate(cfg.model_dump()) == cfg
    assert UNetConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert cfg.multiple == 2**cfg.depth


def test_config_rejects_unknown_and_bad_fields() -> None:
    with pytest.raises(ValidationError, match="n_clases"):
        UNetConfig.model_validate({"n_clases": 3})
    with pytest.raises(ValidationError, match="depth"):
        UNetConfig(depth=0)
    cfg = UNetConfig(n_classes=4, base_channels=4, depth=2, dropout=0.1)
    model = cfg.build()
    assert model.head.out_channels == 4 and model.depth == 2
