"""Deep rPPG models: TDC, ops, genotypes, PhysNet/AutoHR shapes, normalisation, ONNX export."""

from __future__ import annotations

import io
import itertools
import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from facepulse.errors import ConfigError, InputError
from facepulse.models import (
    DEFAULT_GENOTYPE,
    MODELS,
    OPS,
    SEARCH_SPACE,
    AutoHR,
    ClipNormalizer,
    Genotype,
    PhysNet,
    TDConv3d,
    all_edges,
    build_model,
    build_op,
    conv_equivalent,
    diff_signal,
    is_tdc,
    normalize_clip,
    without_tdc,
)

torch.set_num_threads(2)

TINY = {"physnet": {"base_channels": 2}, "physnet_interp": {"base_channels": 2}}
TINY_AUTOHR = {"channels": 4}


def tiny_kwargs(name: str) -> dict:
    return TINY.get(name, TINY_AUTOHR)


# ------------------------------------------------------------------------------- TDC
def tdc_loop(x: np.ndarray, w: np.ndarray, theta: float, stride: int, padding: int, dilation: int, groups: int):
    """The paper's formula written out tap by tap (AutoHR eq. 1), zero padding."""
    b, cin, t, h, wd = x.shape
    cout, cin_g, kt, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2, (padding,) * 2))
    size = [(n + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for n, k in zip((t, h, wd), (kt, kh, kw))]
    out = np.zeros((b, cout, *size))
    cout_g = cout // groups
    for n, o, i, j, k in itertools.product(range(b), range(cout), *(range(s) for s in size)):
        g = o // cout_g
        total = 0.0
        for c in range(cin_g):
            ch = g * cin_g + c
            centre = xp[n, ch, i * stride + dilation * (kt // 2), j * stride + dilation * (kh // 2),
                        k * stride + dilation * (kw // 2)]
            neighbour_taps = 0.0
            for a, bb, cc in itertools.product(range(kt), range(kh), range(kw)):
                tap = w[o, c, a, bb, cc]
                ti, yi, xi = i * stride + dilation * a, j * stride + dilation * bb, k * stride + dilation * cc
                total += tap * xp[n, ch, ti, yi, xi]
                if a != kt // 2:  # R': taps in the neighbouring frames t-1, t+1
                    neighbour_taps += tap
            total -= theta * centre * neighbour_taps
        out[n, o, i, j, k] = total
    return out


@pytest.mark.parametrize(
    "stride,padding,dilation,groups",
    [(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (1, 1, 1, 2)],
)
def test_tdc_theta0_is_conv3d_exactly(stride, padding, dilation, groups):
    torch.manual_seed(0)
    tdc = TDConv3d(4, 4, 3, stride, padding, dilation, groups=groups, bias=True, theta=0.0).double()
    conv = nn.Conv3d(4, 4, 3, stride, padding, dilation, groups=groups, bias=True).double()
    conv.load_state_dict(tdc.state_dict())  # same parameters, same names
    x = torch.randn(2, 4, 7, 6, 5, dtype=torch.float64)
    assert torch.equal(tdc(x), conv(x))


@pytest.mark.parametrize(
    "stride,padding,dilation,groups,theta",
    [(1, 1, 1, 1, 0.7), (2, 2, 2, 1, 0.6), (1, 1, 1, 2, 0.3)],
)
def test_tdc_matches_paper_formula_loop(stride, padding, dilation, groups, theta):
    torch.manual_seed(1)
    tdc = TDConv3d(2, 2, 3, stride, padding, dilation, groups=groups, theta=theta).double()
    x = torch.randn(1, 2, 5, 4, 4, dtype=torch.float64)
    expected = tdc_loop(x.numpy(), tdc.weight.detach().numpy(), theta, stride, padding, dilation, groups)
    got = tdc(x).detach().numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # and the difference term is really there: theta changes the output
    plain = tdc_loop(x.numpy(), tdc.weight.detach().numpy(), 0.0, stride, padding, dilation, groups)
    assert not np.allclose(got, plain)


def test_tdc_difference_kernel_sums_neighbour_frames():
    tdc = TDConv3d(1, 1, 3, theta=0.5).double()
    with torch.no_grad():
        tdc.weight.copy_(torch.arange(27, dtype=torch.float64).view(1, 1, 3, 3, 3))
    w = tdc.weight.detach()
    assert tdc.difference_kernel().item() == w[0, 0, 0].sum().item() + w[0, 0, 2].sum().item()
    # constant input, interior voxel: conv gives 2 * sum(w); TDC subtracts theta * 2 * w_diff
    x = torch.full((1, 1, 5, 5, 5), 2.0, dtype=torch.float64)
    inner = tdc(x)[0, 0, 2, 2, 2].item()
    assert inner == pytest.approx(2.0 * w.sum().item() - 0.5 * 2.0 * tdc.difference_kernel().item())


def test_tdc_gradients_and_errors():
    tdc = TDConv3d(3, 5, (3, 1, 1), padding=(1, 0, 0), theta=0.6)
    x = torch.randn(2, 3, 9, 4, 4, requires_grad=True)
    tdc(x).square().mean().backward()
    assert tdc.weight.grad is not None and torch.isfinite(tdc.weight.grad).all()
    with pytest.raises(ConfigError, match="odd"):
        TDConv3d(3, 3, (2, 3, 3))


# ------------------------------------------------------------------------------- ops
def test_search_space_registered():
    required = {
        "none", "skip", "conv_3x3x3", "conv_1x3x3", "conv_3x1x1", "tdc_3x3x3_t0.2", "tdc_3x3x3_t0.4",
        "tdc_3x3x3_t0.6", "tdc_3x3x3_t0.8", "dil_conv_3x3x3", "dil_tdc_3x3x3_t0.6", "avg_pool_3x3x3",
        "max_pool_3x3x3",
    }
    assert required <= set(OPS.names())
    assert set(SEARCH_SPACE) <= set(OPS.names())


@pytest.mark.parametrize("name", SEARCH_SPACE)
def test_ops_preserve_shape_and_stride_spatially(name):
    x = torch.randn(2, 4, 7, 9, 6)
    op = build_op(name, 4, 1)
    y = op(x)
    assert y.shape == x.shape
    if name == "none":
        assert torch.count_nonzero(y) == 0
    if name == "skip":
        assert torch.equal(y, x)
    y2 = build_op(name, 4, 2)(x)
    assert y2.shape == (2, 4, 7, 5, 3)  # frames kept, H, W -> ceil(/2)


def test_conv_ops_are_conv_bn_relu_and_tdc_theta():
    op = build_op("tdc_3x3x3_t0.4", 4)
    assert [type(m) for m in op] == [TDConv3d, nn.BatchNorm3d, nn.ReLU]
    assert op[0].theta == pytest.approx(0.4)
    dil = build_op("dil_tdc_3x3x3_t0.6", 4)
    assert dil[0].dilation == (2, 2, 2) and dil[0].theta == pytest.approx(0.6)
    conv = build_op("conv_3x1x1", 4)
    assert type(conv[0]) is nn.Conv3d and conv[0].kernel_size == (3, 1, 1)
    assert (conv(torch.randn(1, 4, 5, 3, 3)) >= 0).all()  # ReLU is last
    assert build_op("conv_3x3x3", 4, affine=False)[1].weight is None
    with pytest.raises(ConfigError, match="unknown op 'conv_9x9x9'"):
        build_op("conv_9x9x9", 4)


def test_avg_pool_excludes_padding_and_handles_tiny_maps():
    x = torch.randn(2, 3, 5, 6, 7, dtype=torch.float64)
    for stride in (1, 2):
        ref = nn.AvgPool3d(3, stride=(1, stride, stride), padding=1, count_include_pad=False)(x)
        torch.testing.assert_close(build_op("avg_pool_3x3x3", 3, stride)(x), ref, rtol=1e-12, atol=1e-12)
    tiny = torch.randn(1, 3, 2, 1, 2)  # smaller than the kernel: nn.AvgPool3d refuses it
    assert build_op("avg_pool_3x3x3", 3)(tiny).shape == tiny.shape


def test_conv_equivalent_and_without_tdc():
    assert conv_equivalent("tdc_3x3x3_t0.8") == "conv_3x3x3"
    assert conv_equivalent("dil_tdc_3x3x3_t0.6") == "dil_conv_3x3x3"
    assert conv_equivalent("max_pool_3x3x3") == "max_pool_3x3x3"
    assert is_tdc("tdc_3x3x3_t0.2") and not is_tdc("conv_3x3x3")
    plain = without_tdc(DEFAULT_GENOTYPE)
    assert any(is_tdc(e.op) for e in DEFAULT_GENOTYPE.cells[0])
    assert not any(is_tdc(e.op) for e in plain.cells[0])
    assert [(e.src, e.dst) for e in plain.cells[0]] == [(e.src, e.dst) for e in DEFAULT_GENOTYPE.cells[0]]
    model = build_model("autohr_conv", channels=4)
    assert not any(isinstance(m, TDConv3d) for m in model.modules())
    assert any(isinstance(m, TDConv3d) and m.theta > 0 for m in build_model("autohr", channels=4).modules())


# ------------------------------------------------------------------------- genotype
def cell_json(ops=("tdc_3x3x3_t0.6", "conv_1x3x3", "skip", "tdc_3x3x3_t0.2", "max_pool_3x3x3")):
    a, b, c, d, e = ops
    return [
        {"op": a, "src": 0, "dst": 1},
        {"op": b, "src": 0, "dst": 2},
        {"op": c, "src": 1, "dst": 2},
        {"op": d, "src": 0, "dst": 3},
        {"op": e, "src": 2, "dst": 3},
        {"op": "skip", "src": 1, "dst": 4},
        {"op": "conv_3x1x1", "src": 2, "dst": 4},
        {"op": "skip", "src": 3, "dst": 4},
    ]


def genotype_dict(shared=True, cells=None):
    return {"format": "facepulse-genotype/1", "n_intermediate": 3, "shared": shared, "cells": cells or [cell_json()]}


def test_genotype_json_roundtrip(tmp_path):
    geno = Genotype.from_dict(genotype_dict())
    path = geno.save(tmp_path / "g.json")
    loaded = Genotype.load(path)
    assert loaded == geno
    assert json.loads(path.read_text())["format"] == "facepulse-genotype/1"
    assert Genotype.from_dict(DEFAULT_GENOTYPE.to_dict()) == DEFAULT_GENOTYPE


def test_all_edges():
    edges = all_edges(3)
    assert len(edges) == 1 + 2 + 3 + 3
    assert all(s < d for s, d in edges) and edges[-3:] == [(1, 4), (2, 4), (3, 4)]


def _replace_edge(k, **changes):
    cell = cell_json()
    cell[k] = {**cell[k], **changes}
    return genotype_dict(cells=[cell])


@pytest.mark.parametrize(
    "data,pattern",
    [
        (_replace_edge(0, op="conv_7x7x7"), r"cells\[0\]\[0\]: unknown op 'conv_7x7x7'"),
        (_replace_edge(2, dst=7), r"dst 7 is not a node in 1\.\.4"),
        (_replace_edge(4, src=3), r"src 3 must be a node in 0\.\.2"),
        (_replace_edge(5, src=0), r"output node 4 reads intermediate nodes 1\.\.3"),
        (_replace_edge(4, src=1, dst=2), r"node 2 has 3 incoming edges; needs exactly 2"),
        (_replace_edge(3, src=2), r"node 3 has two edges from node 2"),
        (genotype_dict(cells=[cell_json()[:-1]]), r"output node 4 needs one edge from each node 1\.\.3"),
        (genotype_dict(cells=[cell_json(), cell_json()]), r"shared genotype must have 1 cell"),
        ({**genotype_dict(), "format": "darts"}, r"format 'darts' not supported"),
        ({**genotype_dict(), "n_intermediate": 0}, r"n_intermediate must be an integer >= 1"),
        ({k: v for k, v in genotype_dict().items() if k != "cells"}, r"missing field 'cells'"),
        (genotype_dict(cells=[[{"op": "skip", "src": "0", "dst": 1}]]), r"src must be an integer"),
    ],
)
def test_genotype_validation_messages(data, pattern):
    with pytest.raises(ConfigError, match=pattern) as err:
        Genotype.from_dict(data)
    assert "\n" not in str(err.value)


def test_genotype_file_errors(tmp_path):
    with pytest.raises(InputError, match="missing.json: cannot read genotype"):
        Genotype.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: invalid JSON"):
        Genotype.load(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(_replace_edge(0, op="nope")))
    with pytest.raises(ConfigError, match="wrong.json: .*unknown op 'nope'"):
        Genotype.load(wrong)


def test_non_shared_genotype_needs_one_cell_per_block():
    data = genotype_dict(shared=False, cells=[cell_json()] * 3)
    with pytest.raises(ConfigError, match="3 cells for 4 blocks"):
        AutoHR(data, channels=4, n_blocks=4)
    assert len(AutoHR(data, channels=4, n_blocks=3).cells) == 3


# --------------------------------------------------------------------------- models
SHAPES = [(37, 24, 40), (64, 20, 14), (65, 9, 13)]


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("t,h,w", SHAPES)
def test_every_model_maps_clip_to_pulse(name, t, h, w):
    torch.manual_seed(0)
    model = build_model(name, **tiny_kwargs(name))
    y = model(torch.randn(2, 3, t, h, w))
    assert y.shape == (2, t)
    assert torch.isfinite(y).all()


def _per_block_cells():
    ops = [
        ("conv_3x3x3", "skip", "avg_pool_3x3x3", "dil_conv_3x3x3", "none"),
        ("dil_tdc_3x3x3_t0.6", "conv_3x1x1", "tdc_3x3x3_t0.8", "skip", "conv_1x3x3"),
        ("tdc_3x3x3_t0.2", "max_pool_3x3x3", "skip", "conv_3x3x3", "tdc_3x3x3_t0.4"),
        ("skip", "tdc_3x3x3_t0.6", "conv_3x1x1", "avg_pool_3x3x3", "skip"),
    ]
    return [cell_json(o) for o in ops]


GENOTYPES = {
    "default": None,
    "shared": genotype_dict(),
    "per_block": genotype_dict(shared=False, cells=_per_block_cells()),
    "two_nodes": {
        "format": "facepulse-genotype/1",
        "n_intermediate": 2,
        "shared": True,
        "cells": [[
            {"op": "tdc_3x3x3_t0.8", "src": 0, "dst": 1},
            {"op": "conv_3x3x3", "src": 0, "dst": 2},
            {"op": "tdc_3x3x3_t0.4", "src": 1, "dst": 2},
            {"op": "skip", "src": 1, "dst": 3},
            {"op": "skip", "src": 2, "dst": 3},
        ]],
    },
}


@pytest.mark.parametrize("geno", GENOTYPES)
@pytest.mark.parametrize("upsample", ["transpose", "interp"])
def test_autohr_from_genotypes(geno, upsample):
    model = AutoHR(GENOTYPES[geno], channels=4, upsample=upsample)
    for t, h, w in SHAPES:
        assert model(torch.randn(1, 3, t, h, w)).shape == (1, t)


def test_autohr_accepts_genotype_path(tmp_path):
    path = Genotype.from_dict(genotype_dict(shared=False, cells=_per_block_cells())).save(tmp_path / "g.json")
    model = build_model("autohr", genotype=str(path), channels=4)
    assert not model.genotype.shared
    assert model.cells[1].ops[0][0].dilation == (2, 2, 2)  # dil_tdc of block 2's first edge


def test_physnet_variants_and_width():
    assert any(isinstance(m, nn.ConvTranspose3d) for m in build_model("physnet").modules())
    assert not any(isinstance(m, nn.ConvTranspose3d) for m in build_model("physnet_interp").modules())
    widths = {m.out_channels for m in build_model("physnet", base_channels=3).modules() if isinstance(m, nn.Conv3d)}
    assert widths == {3, 6, 12, 1}


def test_models_are_per_sample_in_eval_mode():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 21, 16, 12)
    for name in MODELS.names():
        model = build_model(name, **tiny_kwargs(name)).eval()
        with torch.no_grad():
            full = model(x)
            single = model(x[1:2])
        torch.testing.assert_close(full[1:2], single, rtol=1e-4, atol=1e-5)


def test_model_errors():
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        build_model("resnet")
    with pytest.raises(ConfigError, match="model 'physnet': .*width"):
        build_model("physnet", width=3)
    with pytest.raises(ConfigError, match="base_channels must be >= 1"):
        PhysNet(base_channels=0)
    with pytest.raises(InputError, match=r"expected clips \(B, 3, T, H, W\), got shape \(3, 8, 8, 8\)"):
        build_model("physnet", base_channels=2)(torch.randn(3, 8, 8, 8))
    with pytest.raises(ConfigError, match="upsample mode 'nearest' unknown"):
        AutoHR(channels=4, upsample="nearest")


def test_tiny_physnet_learns_a_pulse():
    """A few Adam steps on clips whose skin colour pulses: the model must fit the pulse."""
    from facepulse.losses import build_loss

    torch.manual_seed(0)
    fps, t = 30.0, 64
    time_s = torch.arange(t) / fps
    hr_hz = torch.tensor([1.0, 1.4, 1.9, 2.3])
    phase = torch.tensor([0.0, 1.0, 2.0, 3.0])
    ppg = torch.sin(2 * math.pi * hr_hz[:, None] * time_s + phase[:, None])  # (B, T)
    clips = 0.3 * torch.randn(4, 3, t, 16, 16) + ppg[:, None, :, None, None] * torch.tensor([0.3, 1.0, 0.5])[
        None, :, None, None, None
    ]
    model = build_model("physnet", base_channels=4)
    loss_fn = build_loss("neg_pearson")
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        optim.zero_grad()
        loss = loss_fn(model(normalize_clip(clips, "standardize")), ppg)
        loss.backward()
        optim.step()
        first = loss.item() if first is None else first
    model.eval()
    with torch.no_grad():
        final = loss_fn(model(normalize_clip(clips, "standardize")), ppg).item()
    assert final < 0.2 < first


# ---------------------------------------------------------------------- normalization
def test_standardize_raw_and_diff():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 6, 4, 5, dtype=torch.float64) * 255
    s = normalize_clip(x, "standardize")
    torch.testing.assert_close(s.mean(dim=(2, 3, 4)), torch.zeros(2, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(s.std(dim=(2, 3, 4), correction=0), torch.ones(2, 3, dtype=torch.float64))
    torch.testing.assert_close(normalize_clip(x, "raw"), x / 255)
    d = normalize_clip(x, "diff")
    assert d.shape == x.shape and torch.count_nonzero(d[:, :, -1]) == 0
    by_hand = (x[1, 2, 3, 1, 4] - x[1, 2, 2, 1, 4]) / (x[1, 2, 3, 1, 4] + x[1, 2, 2, 1, 4])
    all_d = (x[1, :, 1:] - x[1, :, :-1]) / (x[1, :, 1:] + x[1, :, :-1])
    assert d[1, 2, 2, 1, 4].item() == pytest.approx((by_hand / all_d.std(correction=0)).item(), rel=1e-6)
    # uint8 input and constant clips stay finite
    u8 = torch.full((1, 3, 4, 2, 2), 7, dtype=torch.uint8)
    for method in ("raw", "standardize", "diff"):
        assert torch.isfinite(ClipNormalizer(method)(u8)).all()
    assert torch.count_nonzero(normalize_clip(u8, "standardize")) == 0
    with pytest.raises(ConfigError, match="unknown normalization 'zscore'"):
        ClipNormalizer("zscore")


def test_diff_signal():
    ppg = torch.tensor([[0.0, 1.0, 3.0, 6.0]])
    d = diff_signal(ppg)
    expected = torch.tensor([1.0, 2.0, 3.0]) / torch.tensor([1.0, 2.0, 3.0]).std(correction=0)
    torch.testing.assert_close(d[0, :3], expected)
    assert d[0, 3] == 0


# -------------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("name,kwargs", [("physnet", {"base_channels": 4}), ("autohr", {"channels": 8})])
def test_onnx_export_matches_torch(name, kwargs):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = build_model(name, **kwargs).eval()
    x = torch.randn(2, 3, 37, 24, 20)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation / tracer notes
        # dynamo=False: the TorchScript exporter, which needs no onnxscript
        torch.onnx.export(
            model, (x,), buf, opset_version=17, dynamo=False, input_names=["clip"], output_names=["pulse"],
            dynamic_axes={
                "clip": {0: "batch", 2: "frames", 3: "height", 4: "width"},
                "pulse": {0: "batch", 1: "frames"},
            },
        )
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for clip in (x, torch.randn(1, 3, 64, 20, 14)):  # the traced size, then another one
        (got,) = session.run(None, {"clip": clip.numpy()})
        with torch.no_grad():
            expected = model(clip).numpy()
        assert got.shape == expected.shape == (clip.shape[0], clip.shape[2])
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
