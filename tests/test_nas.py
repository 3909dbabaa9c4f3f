"""AutoHR architecture search: supernet, bi-level steps, derivation, drawing, search CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from facepulse.config import load_config
from facepulse.errors import ConfigError
from facepulse.losses import build_loss
from facepulse.models import AutoHR, Genotype, SEARCH_SPACE, all_edges, build_model
from facepulse.models.genotype import Edge, as_genotype
from facepulse.nas import (
    MixedOp,
    Supernet,
    architecture_step,
    channel_shuffle,
    derive_genotype,
    draw_genotype,
    edge_choice,
    pulse_loss,
    read_alpha_history,
    second_order_alpha_grads,
    weight_step,
)

torch.set_num_threads(2)

# A small op set that still covers every kind: none, identity, fused plain/TDC/dilated
# convolutions, a single 1x3x3 conv, both poolings.
TINY_OPS = (
    "none",
    "skip",
    "conv_3x3x3",
    "conv_1x3x3",
    "tdc_3x3x3_t0.6",
    "dil_conv_3x3x3",
    "dil_tdc_3x3x3_t0.6",
    "avg_pool_3x3x3",
    "max_pool_3x3x3",
)


def tiny_supernet(**kwargs) -> Supernet:
    opts = {"channels": 4, "n_blocks": 2, "n_intermediate": 3, "op_names": TINY_OPS}
    opts.update(kwargs)
    return Supernet(**opts)


def make_batch(seed: int, b: int = 2, t: int = 16, size: int = 16) -> dict:
    """Pixel-valued clips whose green channel carries a pulse, with its labels."""
    g = torch.Generator().manual_seed(seed)
    fps = 30.0
    hr = 60.0 + 60.0 * torch.rand(b, generator=g)
    time_s = torch.arange(t) / fps
    ppg = torch.sin(2 * math.pi * hr[:, None] / 60.0 * time_s[None, :])
    clip = 120.0 + 10.0 * torch.rand(b, 3, t, size, size, generator=g)
    clip[:, 1] += 3.0 * ppg[:, :, None, None]
    return {"clip": clip, "ppg": ppg, "fps": torch.full((b,), fps), "hr_bpm": hr}


def snapshot(tensors) -> list[torch.Tensor]:
    return [x.detach().clone() for x in tensors]


# ------------------------------------------------------------------------ supernet
def test_supernet_forward_backward_tiny_clip():
    torch.manual_seed(0)
    net = tiny_supernet()
    x = torch.randn(2, 3, 12, 16, 16)
    y = net(x)
    assert y.shape == (2, 12)
    y.square().mean().backward()
    assert net.alphas.grad is not None and net.alphas.grad.abs().sum() > 0
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == []
    # the edges of a cell are those of all_edges, each with every op
    cell = net.backbone.cells[0]
    assert cell.edges == tuple(all_edges(3))
    assert all(m.op_names == TINY_OPS for m in cell.mixed)


def test_supernet_reuses_autohr_stem_and_head():
    net = tiny_supernet()
    plain = AutoHR(channels=4, n_blocks=2)
    outside = lambda sd: {k: v.shape for k, v in sd.items() if not k.startswith("cells.")}  # noqa: E731
    assert outside(net.backbone.state_dict()) == outside(plain.state_dict())


def test_supernet_rejects_bad_options():
    with pytest.raises(ConfigError, match="nope"):
        Supernet(channels=4, n_blocks=2, op_names=["skip", "nope"])
    with pytest.raises(ConfigError, match="partial_channels 3"):
        Supernet(channels=4, n_blocks=2, op_names=["skip"], partial_channels=3)
    with pytest.raises(ConfigError, match="duplicate"):
        Supernet(channels=4, n_blocks=2, op_names=["skip", "skip"])


def test_mixed_op_fused_equals_op_by_op():
    """The fused convolution path gives the values, gradients and BN statistics of the plain sum."""
    torch.manual_seed(1)
    plain = MixedOp(4, SEARCH_SPACE, fuse=False).double()
    fused = MixedOp(4, SEARCH_SPACE, fuse=True).double()
    fused.load_state_dict(plain.state_dict())
    assert fused._groups, "the default space has fusable convolutions"
    x = torch.randn(2, 4, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.softmax(torch.randn(len(SEARCH_SPACE), dtype=torch.float64), 0).requires_grad_()
    out_p, out_f = plain(x, w), fused(x, w)
    torch.testing.assert_close(out_f, out_p)
    gp = torch.autograd.grad(out_p.sin().sum(), [x, w, *plain.parameters()])
    gf = torch.autograd.grad(out_f.sin().sum(), [x, w, *fused.parameters()])
    for a, b in zip(gf, gp, strict=True):
        torch.testing.assert_close(a, b)
    for (name, a), b in zip(fused.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    plain.eval(), fused.eval()
    torch.testing.assert_close(fused(x, w), plain(x, w))


def test_partial_channels_route_a_slice_through_the_ops():
    x = torch.randn(2, 8, 4, 3, 3)
    # with identity as the only op, PC-DARTS is exactly the channel shuffle of the input
    op = MixedOp(8, ["skip"], partial=4)
    torch.testing.assert_close(op(x, torch.ones(1)), channel_shuffle(x, 4))
    assert not torch.equal(channel_shuffle(x, 4), x)
    # ops are built for C / k channels: parameters shrink by k^2 for a conv
    full = sum(p.numel() for p in MixedOp(8, ["conv_3x3x3"]).parameters())
    part = sum(p.numel() for p in MixedOp(8, ["conv_3x3x3"], partial=2).parameters())
    assert full == 8 * 8 * 27 and part == 4 * 4 * 27
    # the bypassed channels do not depend on the op weights
    conv = MixedOp(8, ["skip", "conv_3x3x3"], partial=2)
    y1, y2 = conv(x, torch.tensor([1.0, 0.0])), conv(x, torch.tensor([0.0, 1.0]))
    same = torch.isclose(y1, y2).all(dim=(0, 2, 3, 4))
    assert same.sum() == 4  # half of the output channels are the untouched half of the input


def test_shared_vs_per_block_alphas():
    shared = tiny_supernet(shared_alphas=True, n_blocks=3)
    per_block = tiny_supernet(shared_alphas=False, n_blocks=3)
    n_edges = len(all_edges(3))
    assert shared.alphas.shape == (1, n_edges, len(TINY_OPS))
    assert per_block.alphas.shape == (3, n_edges, len(TINY_OPS))
    count = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    assert count(shared.weight_parameters()) == count(per_block.weight_parameters())
    assert count(per_block.parameters()) - count(shared.parameters()) == 2 * n_edges * len(TINY_OPS)
    g_shared = derive_genotype(shared.alphas.detach().numpy(), TINY_OPS, 3)
    g_block = derive_genotype(per_block.alphas.detach().numpy(), TINY_OPS, 3)
    assert g_shared.shared and len(g_shared.cells) == 1
    assert not g_block.shared and len(g_block.cells) == 3
    assert AutoHR(g_block, channels=4, n_blocks=3)(torch.randn(1, 3, 8, 16, 16)).shape == (1, 8)
    with pytest.raises(ConfigError, match="3 cells for 4 blocks"):
        AutoHR(g_block, channels=4, n_blocks=4)


# ------------------------------------------------------------------ bi-level steps
@pytest.mark.parametrize("order", ["first", "second"])
def test_architecture_step_moves_only_alphas(order):
    torch.manual_seed(2)
    net = tiny_supernet()
    loss_fn = build_loss("hybrid")
    train, val = make_batch(0), make_batch(1)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=0.1)
    weights0, buffers0, alphas0 = snapshot(net.weight_parameters()), snapshot(net.buffers()), snapshot([net.alphas])
    seen = {}
    net.alphas.register_hook(lambda g: seen.setdefault("alpha_grad", g.clone()))
    loss = architecture_step(
        net, a_opt, val_loss=lambda: pulse_loss(net, val, loss_fn), train_loss=lambda: pulse_loss(net, train, loss_fn),
        order=order, xi=0.01,
    )
    assert torch.isfinite(loss)
    if order == "first":  # the second order writes the gradient without backward hooks
        assert seen["alpha_grad"].abs().sum() > 0
    assert not torch.equal(net.alphas, alphas0[0])
    assert all(p.grad is None for p in net.weight_parameters())
    assert all(torch.equal(p, p0) for p, p0 in zip(net.weight_parameters(), weights0, strict=True))
    assert all(torch.equal(b, b0) for b, b0 in zip(net.buffers(), buffers0, strict=True))


def test_weight_step_moves_only_weights():
    torch.manual_seed(3)
    net = tiny_supernet()
    loss_fn = build_loss("hybrid")
    batch = make_batch(0)
    w_opt = torch.optim.Adam(net.weight_parameters(), lr=1e-2)
    weights0, alphas0 = snapshot(net.weight_parameters()), net.alphas.detach().clone()
    loss = weight_step(net, w_opt, lambda: pulse_loss(net, batch, loss_fn))
    assert torch.isfinite(loss)
    assert net.alphas.grad is None
    assert torch.equal(net.alphas, alphas0)
    params = list(net.weight_parameters())
    changed = [not torch.equal(p, p0) for p, p0 in zip(params, weights0, strict=True)]
    # Adam leaves a parameter whose gradient is exactly zero (a dead ReLU path) unchanged.
    has_grad = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params]
    assert all(c for c, g in zip(changed, has_grad, strict=True) if g)
    assert sum(changed) >= 0.9 * len(params)


def test_second_order_matches_exact_unrolled_gradient():
    """DARTS' finite-difference Hessian-vector product against double backpropagation."""
    torch.manual_seed(4)
    net = tiny_supernet(n_blocks=2, n_intermediate=2, op_names=("none", "skip", "conv_1x3x3", "tdc_3x3x3_t0.4"))
    net = net.double()
    train, val = make_batch(5, t=8, size=8), make_batch(6, t=8, size=8)
    xi, decay = 0.05, 1e-3
    names = [n for n, _ in net.named_parameters()]

    def loss_at(params: dict, batch: dict) -> torch.Tensor:
        pred = torch.func.functional_call(net, params, (batch["clip"].double() / 255.0,))
        return (pred - batch["ppg"].double()).square().mean()

    params = dict(net.named_parameters())
    w_names = [n for n in names if n != "alphas"]
    g = torch.autograd.grad(loss_at(params, train), [params[n] for n in w_names], create_graph=True)
    unrolled = dict(params)
    for n, gn in zip(w_names, g, strict=True):
        unrolled[n] = params[n] - xi * (gn + decay * params[n])
    (exact,) = torch.autograd.grad(loss_at(unrolled, val), [net.alphas])

    approx, _ = second_order_alpha_grads(
        net.weight_parameters(), [net.alphas],
        train_loss=lambda: loss_at(dict(net.named_parameters()), train),
        val_loss=lambda: loss_at(dict(net.named_parameters()), val),
        xi=xi, weight_decay=decay, radius=1e-4,  # small step: this tiny ReLU net is far from linear at 0.01
    )
    fixed = {n: (v if n == "alphas" else v.detach()) for n, v in unrolled.items()}
    (first_at_unrolled,) = torch.autograd.grad(loss_at(fixed, val), [net.alphas])
    hessian_term = (exact - first_at_unrolled).norm()
    assert hessian_term > 1e-3 * exact.norm()  # the correction matters here, so the check has teeth
    assert (approx[0] - exact).norm() < 1e-3 * hessian_term


def test_search_module_shrinks_clips_for_the_search():
    from facepulse.nas import SearchModule

    cfg = load_config(None, ["kind=search", "search.clip_len=8", "search.size=8", "search.channels=4",
                             "search.n_blocks=2", "search.ops=[skip, conv_1x3x3]"])
    module = SearchModule(cfg)
    batch = make_batch(0, b=2, t=16, size=16)
    small = module._shrink(batch)
    assert small["clip"].shape == (2, 3, 8, 8, 8) and small["ppg"].shape == (2, 8)
    torch.testing.assert_close(small["ppg"], batch["ppg"][:, :8])
    # area resizing keeps the mean level of each frame
    torch.testing.assert_close(small["clip"].mean(dim=(3, 4)), batch["clip"][:, :, :8].mean(dim=(3, 4)))
    assert torch.isfinite(pulse_loss(module.model, small, module.loss_fn))


# ----------------------------------------------------------------------- derivation
OPS4 = ("none", "skip", "conv_3x3x3", "avg_pool_3x3x3")
EDGES3 = all_edges(3)  # (0,1) (0,2) (1,2) (0,3) (1,3) (2,3) (1,4) (2,4) (3,4)


def alphas_for(rows: dict[tuple[int, int], list[float]]) -> np.ndarray:
    a = np.zeros((1, len(EDGES3), len(OPS4)))
    for edge, row in rows.items():
        a[0, EDGES3.index(edge)] = row
    return a


def cell_of(genotype: Genotype) -> set[tuple[str, int, int]]:
    (cell,) = genotype.cells
    return {(e.op, e.src, e.dst) for e in cell}


def test_derive_keeps_two_strongest_edges_and_never_none():
    rows = {
        (0, 1): [9, 0, 2, 0],  # none strongest: the best non-none op is kept (node 1 has one edge)
        (0, 2): [0, 0, 0, 3],
        (1, 2): [0, 1, 0, 0],
        (0, 3): [12, 4, 0, 0],  # none dominates, so its best real op is weak: edge dropped
        (1, 3): [0, 0, 2, 0],
        (2, 3): [0, 3, 0, 0],
        (1, 4): [0, 0, 5, 0],
        (2, 4): [6, 0, 0, 1],  # output edges are all kept, with their best real op
        (3, 4): [0, 2, 0, 0],
    }
    geno = derive_genotype(alphas_for(rows), OPS4, 3)
    assert cell_of(geno) == {
        ("conv_3x3x3", 0, 1),
        ("avg_pool_3x3x3", 0, 2),
        ("skip", 1, 2),
        ("conv_3x3x3", 1, 3),
        ("skip", 2, 3),
        ("conv_3x3x3", 1, 4),
        ("avg_pool_3x3x3", 2, 4),
        ("skip", 3, 4),
    }
    assert geno.shared


def test_derive_breaks_ties_deterministically():
    rows = {
        (0, 1): [0, 2, 2, 2],  # op tie: the op listed first wins
        (0, 3): [0, 3, 0, 0],  # three equal edges into node 3: the lower sources win
        (1, 3): [0, 0, 3, 0],
        (2, 3): [0, 0, 0, 3],
        (1, 4): [0, 1, 1, 0],
    }
    geno = derive_genotype(alphas_for(rows), OPS4, 3)
    cell = cell_of(geno)
    assert ("skip", 0, 1) in cell
    assert {(s, d) for _, s, d in cell if d == 3} == {(0, 3), (1, 3)}
    assert ("skip", 1, 4) in cell
    # all-equal alphas: every edge ties, every op ties
    flat = derive_genotype(np.zeros((1, len(EDGES3), len(OPS4))), OPS4, 3)
    kept = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (1, 4), (2, 4), (3, 4)]
    assert cell_of(flat) == {("skip", s, d) for s, d in kept}


def test_derive_per_block_and_errors():
    a = np.zeros((2, len(EDGES3), len(OPS4)))
    a[1, EDGES3.index((0, 1)), 3] = 1.0
    geno = derive_genotype(a, OPS4, 3)
    assert not geno.shared and len(geno.cells) == 2
    assert Edge("skip", 0, 1) in geno.cells[0] and Edge("avg_pool_3x3x3", 0, 1) in geno.cells[1]
    with pytest.raises(ConfigError, match="only 'none'"):
        derive_genotype(np.zeros((1, len(EDGES3), 1)), ("none",), 3)
    with pytest.raises(ConfigError, match="edges per cell"):
        derive_genotype(np.zeros((1, 5, 4)), OPS4, 3)
    with pytest.raises(ConfigError, match="op columns"):
        derive_genotype(np.zeros((1, len(EDGES3), 3)), OPS4, 3)


def test_derived_genotype_round_trips_and_draws(tmp_path):
    rng = np.random.default_rng(0)
    for n_cells in (1, 4):
        geno = derive_genotype(rng.normal(size=(n_cells, len(EDGES3), len(SEARCH_SPACE))), SEARCH_SPACE, 3)
        path = geno.save(tmp_path / f"g{n_cells}.json")
        assert Genotype.load(path) == geno
        png = draw_genotype(geno, tmp_path / f"g{n_cells}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        import matplotlib.image

        height = matplotlib.image.imread(png).shape[0]
        if n_cells == 1:
            one_height = height
        else:
            assert height > 3 * one_height  # one panel per block


# ---------------------------------------------------------------- search end to end
def write_tiny_config(tmp_path, **search) -> str:
    cfg = {
        "name": "tiny_search",
        "kind": "search",
        "seed": 0,
        "out_dir": "runs",
        "data": {"clip_len": 16, "clip_stride": 16, "fps": 30.0, "size": 16},
        "optim": {"optimizer": "adam", "lr": 3e-3, "batch_size": 3, "max_epochs": 2, "gradient_clip": 5.0},
        "trainer": {"log_every_n_steps": 1},
        "search": {
            "channels": 4, "n_blocks": 2, "n_intermediate": 3, "ops": list(TINY_OPS), "alpha_lr": 0.05,
            "partial_channels": 2,
            "synth": {"n_train": 2, "n_val": 1, "n_test": 0, "duration_s": 2.0, "seed": 7},
            **search,
        },
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_search_cli_resumes_and_its_genotype_trains(tmp_path, monkeypatch, capsys):
    from facepulse.cli import main

    monkeypatch.chdir(tmp_path)
    config = write_tiny_config(tmp_path)
    assert main(["search", "--config", config, "--quiet"]) == 0
    run = tmp_path / "runs" / "tiny_search"
    history = read_alpha_history(run / "alphas.jsonl")
    assert [r["epoch"] for r in history] == [0, 1]
    assert history[0]["op_names"] == list(TINY_OPS)
    assert history[0]["alphas"] != history[1]["alphas"]  # the alphas moved
    assert np.allclose(np.sum(history[1]["weights"], axis=-1), 1.0)
    for epoch in (0, 1):
        Genotype.load(run / f"genotype_epoch{epoch:02d}.json")
    assert (run / "genotype.png").stat().st_size > 0
    assert (run / "last.ckpt").is_file()
    final = Genotype.load(run / "genotype.json")
    assert final == Genotype.from_dict(history[-1]["genotype"])

    # a rerun with more epochs continues from epoch 2 and logs each epoch once
    assert main(["search", "--config", config, "--quiet", "optim.max_epochs=3"]) == 0
    assert "resumed at epoch 2" in capsys.readouterr().out
    history = read_alpha_history(run / "alphas.jsonl")
    assert [r["epoch"] for r in history] == [0, 1, 2]
    final = Genotype.load(run / "genotype.json")
    assert final == Genotype.from_dict(history[-1]["genotype"])

    # the genotype trains through the training runner (model.params.genotype = the JSON path)
    from facepulse.nas.search import synthetic_splits
    from facepulse.train.data import ClipDataModule
    from facepulse.train.runner import run_experiment

    search_cfg = load_config(config)
    train_cfg = load_config(
        None,
        [
            "name=tiny_train", "out_dir=runs", "model.name=autohr",
            f"model.params={json.dumps({'genotype': 'runs/tiny_search/genotype.json', 'channels': 4, 'n_blocks': 2})}",
            "data.clip_len=16", "data.size=16", "optim.batch_size=3", "optim.max_epochs=2", "optim.lr=3e-3",
            "trainer.log_every_n_steps=1",
        ],
    )
    splits = synthetic_splits(search_cfg.search.synth, search_cfg.data)
    result = run_experiment(
        train_cfg, datamodule=ClipDataModule(train_cfg, train=splits["train"], val=splits["val"]), progress=False
    )
    assert result.module.model.genotype == final
    (metrics,) = (result.run_dir / "logs").glob("*/metrics.csv")
    lines = metrics.read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("train_loss_step")
    losses = [float(r.split(",")[col]) for r in lines[1:] if r.split(",")[col]]
    assert len(losses) >= 3 and all(math.isfinite(v) for v in losses)
    assert len(set(losses)) > 1


def test_search_cli_user_errors(tmp_path, monkeypatch, capsys):
    from facepulse.cli import main

    monkeypatch.chdir(tmp_path)
    config = write_tiny_config(tmp_path)
    assert main(["search", "--config", config, "kind=supervised"]) == 2
    assert "needs kind: search" in capsys.readouterr().err
    assert main(["search", "--config", config, "search.ops=[skip, bogus_op]"]) == 2
    assert "bogus_op" in capsys.readouterr().err


# ------------------------------------------------------------ pruning readings, PC-DARTS
def test_prune_edges_or_ops_readings():
    """"Each node keeps the two strongest operations": "edges" keeps two edges with one op
    each; "ops" keeps the two strongest ops overall, which may share an edge."""
    rows = {
        (0, 1): [0, 3, 2.5, 0],  # node 1: with "ops" both skip and conv from the input
        (0, 2): [0, 4, 3.5, 0],  # node 2: the two strongest ops are both on edge 0 -> 2
        (1, 2): [0, 0, 0, 0],  # weaker than the second op of edge 0 -> 2
        (0, 3): [0, 0, 0, 2],
        (1, 3): [0, 0, 3, 0],
        (2, 3): [0, 1, 0, 0],
        (1, 4): [0, 1, 0, 0],
    }
    alphas = alphas_for(rows)
    edges = derive_genotype(alphas, OPS4, 3)
    ops = derive_genotype(alphas, OPS4, 3, prune="ops")
    assert edges.node_inputs == "edges" and ops.node_inputs == "ops"
    node = lambda g, j: {(e.op, e.src) for e in g.cells[0] if e.dst == j}  # noqa: E731
    assert node(edges, 1) == {("skip", 0)}
    assert node(edges, 2) == {("skip", 0), ("skip", 1)}
    assert node(ops, 1) == {("skip", 0), ("conv_3x3x3", 0)}
    assert node(ops, 2) == {("skip", 0), ("conv_3x3x3", 0)}
    assert node(ops, 3) == node(edges, 3) == {("conv_3x3x3", 1), ("avg_pool_3x3x3", 0)}
    assert {e for e in ops.cells[0] if e.dst == 4} == {e for e in edges.cells[0] if e.dst == 4}
    # the "ops" genotype is a valid file that builds and runs, and keeps its reading
    again = Genotype.from_json(ops.to_json())
    assert again == ops and "node_inputs" in ops.to_json() and "node_inputs" not in edges.to_json()
    net = AutoHR(again, channels=4, n_blocks=2)
    assert net(torch.randn(1, 3, 8, 16, 16)).shape == (1, 8)
    with pytest.raises(ConfigError, match="node_inputs 'any' unknown"):
        Genotype.from_dict({**edges.to_dict(), "node_inputs": "any"})
    with pytest.raises(ConfigError, match="search.prune 'all' unknown"):
        derive_genotype(alphas, OPS4, 3, prune="all")
    cfg = load_config(None, ["search.prune=ops"])
    assert cfg.search.prune == "ops"


def test_pc_darts_edge_normalisation():
    """With partial channels the supernet learns edge weights: softmax over the edges
    into each intermediate node (1 for output edges); they scale the edges' outputs and
    the op strengths the genotype is derived from."""
    net = tiny_supernet(partial_channels=2)
    assert net.edge_normalization and net.betas is not None
    assert tiny_supernet().betas is None and not tiny_supernet(partial_channels=2, edge_normalization=False).edge_normalization
    assert len(net.arch_parameters()) == 2 and all(p is not net.betas for p in net.weight_parameters())
    with torch.no_grad():
        net.betas.normal_()
    w = net.edge_weights()[0]
    dst = torch.tensor([d for _, d in EDGES3])
    for j in (1, 2, 3):
        assert w[dst == j].sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(w[dst == 4], torch.ones(3))
    batch = make_batch(0)
    loss = pulse_loss(net, batch, build_loss("neg_pearson"))
    loss.backward()
    assert net.betas.grad is not None and net.betas.grad[0, dst <= 3].abs().sum() > 0
    # derivation: equal op weights everywhere, the edge weights decide node 3's two edges
    edge_w = np.ones((1, len(EDGES3)))
    edge_w[0, EDGES3.index((0, 3))], edge_w[0, EDGES3.index((1, 3))], edge_w[0, EDGES3.index((2, 3))] = 0.2, 0.3, 0.5
    geno = derive_genotype(np.zeros((1, len(EDGES3), len(OPS4))), OPS4, 3, edge_weights=edge_w)
    assert {e.src for e in geno.cells[0] if e.dst == 3} == {1, 2}
    assert {e.src for e in derive_genotype(np.zeros((1, len(EDGES3), len(OPS4))), OPS4, 3).cells[0] if e.dst == 3} == {0, 1}


def test_search_on_several_devices_is_a_clear_error(tmp_path, monkeypatch):
    from facepulse.nas.search import SearchModule, check_single_device
    from facepulse.train.runner import run_experiment

    monkeypatch.chdir(tmp_path)
    cfg = load_config(write_tiny_config(tmp_path), ["trainer.devices=2", "trainer.strategy=ddp"])
    for start in (lambda: SearchModule(cfg), lambda: run_experiment(cfg, progress=False)):
        with pytest.raises(ConfigError, match=r"trainer.devices=2.*runs on one device.*all-reduce") as err:
            start()
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="world size 4"):
        check_single_device(load_config(write_tiny_config(tmp_path), ["trainer.devices=auto"]), world_size=4)
    check_single_device(load_config(write_tiny_config(tmp_path), ["trainer.devices=auto"]), world_size=1)


# ------------------------------------------------------------- search finds the op
TOY_OPS = ("none", "skip", "conv_1x3x3", "avg_pool_3x3x3", "max_pool_3x3x3", "tdc_3x3x3_t0.6")


class ToySearch(torch.nn.Module):
    """One mixed edge between a 1x1x1 lift and a 1x1x1 readout (no other temporal
    receptive field): the architecture weights alone decide what the edge can see in time."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.lift = torch.nn.Conv3d(1, channels, 1)
        self.edge = MixedOp(channels, TOY_OPS)
        self.read = torch.nn.Conv3d(channels, 1, 1)
        self.alphas = torch.nn.Parameter(1e-3 * torch.randn(len(TOY_OPS)))

    def arch_parameters(self):
        return [self.alphas]

    def weight_parameters(self):
        return [p for name, p in self.named_parameters() if name != "alphas"]

    def forward(self, x):
        return self.read(self.edge(self.lift(x), torch.softmax(self.alphas, -1))).mean(dim=(1, 3, 4))


def toy_batch(gen: torch.Generator, b: int = 8, t: int = 16, size: int = 4):
    """Clips of a white-noise signal s(t) (plus pixel noise); target s(t + 1) - s(t - 1).

    Only an op that takes a temporal difference can predict it: ``skip`` and the 1x3x3
    conv see one frame (s(t) is uncorrelated with the target), the poolings are symmetric
    in time (their correlation with an antisymmetric difference is 0); of the candidates
    only the TDC op (a 3x3x3 convolution) can."""
    s = torch.randn(b, 1, t + 2, 1, 1, generator=gen)
    gain = 1 + 0.5 * torch.rand(1, 1, 1, size, size, generator=gen)
    x = s * gain + 0.3 * torch.randn(b, 1, t + 2, size, size, generator=gen)
    return x[:, :, 1:-1], s[:, 0, 2:, 0, 0] - s[:, 0, :-2, 0, 0]


def test_bilevel_search_selects_the_temporal_difference_op():
    torch.manual_seed(0)
    net = ToySearch()
    gen = torch.Generator().manual_seed(1000)
    w_opt = torch.optim.Adam(net.weight_parameters(), lr=0.01)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=0.03, betas=(0.5, 0.999))

    def mse(batch):  # frames 1..T-2: the first and last output see a padded neighbour
        x, y = batch
        return ((net(x)[:, 1:-1] - y[:, 1:-1]) ** 2).mean()

    for step in range(150):
        train, val = toy_batch(gen), toy_batch(gen)
        if step >= 20:  # warm-up: weights first, as search.warmup_epochs
            architecture_step(net, a_opt, lambda: mse(val))
        weight_step(net, w_opt, lambda: mse(train))
    weights = torch.softmax(net.alphas.detach(), -1).double().numpy()
    best, strength = edge_choice(weights, TOY_OPS)
    assert TOY_OPS[int(best)] == "tdc_3x3x3_t0.6", weights
    others = np.delete(weights, TOY_OPS.index("tdc_3x3x3_t0.6"))
    assert strength > 0.5 and strength > 5 * others.max(), weights


# ---------------------------------------------- search -> train -> predict -> export
def test_searched_model_predicts_and_exports_from_another_folder(tmp_path, monkeypatch, capsys):
    """The chain search -> genotype.json -> train -> `predict --model` -> `export --onnx`,
    the last two run from another working directory: the checkpoint holds the genotype
    itself (it used to hold the relative path and failed with 'cannot read genotype').
    A checkpoint of the old kind (the path) still loads from elsewhere."""
    from facepulse.cli import main
    from facepulse.models.inference import load_model
    from facepulse.nas.search import synthetic_splits
    from facepulse.synth import SynthParams
    from facepulse.synth.params import CameraParams
    from facepulse.synth.writer import write_dataset
    from facepulse.train.data import ClipDataModule
    from facepulse.train.runner import run_experiment

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    config = write_tiny_config(work)
    assert main(["search", "--config", config, "--quiet", "optim.max_epochs=1"]) == 0
    capsys.readouterr()
    genotype = Genotype.load(work / "runs" / "tiny_search" / "genotype.json")
    train_cfg = load_config(
        None,
        [
            "name=tiny_train", "out_dir=runs", "model.name=autohr",
            f"model.params={json.dumps({'genotype': 'runs/tiny_search/genotype.json', 'channels': 4, 'n_blocks': 2})}",
            "data.clip_len=16", "data.size=16", "optim.batch_size=3", "optim.max_steps=2",
            "trainer.early_stopping_patience=null",
        ],
    )
    search_cfg = load_config(config)
    splits = synthetic_splits(search_cfg.search.synth, search_cfg.data)
    result = run_experiment(
        train_cfg, datamodule=ClipDataModule(train_cfg, train=splits["train"], val=splits["val"]), progress=False
    )
    ckpt = result.best_ckpt.resolve()
    stored = torch.load(ckpt, map_location="cpu", weights_only=True)["facepulse"]["config"]["model"]["params"]
    assert Genotype.from_dict(stored["genotype"]) == genotype

    video_root = tmp_path / "videos"
    base = SynthParams(duration_s=6.0, camera=CameraParams(width=160, height=120))
    write_dataset(video_root, n_videos=1, scenario="still", seed=3, base=base, progress=False)
    (video,) = sorted(video_root.glob("videos/*/video.mkv"))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["predict", str(video), "--model", str(ckpt), "--window", "4", "--quiet"]) == 0
    out = capsys.readouterr()
    assert "method model:autohr" in out.out and "heart rate" in out.out, out.err
    onnx_path = elsewhere / "searched.onnx"
    assert main(["export", str(ckpt), "--onnx", str(onnx_path)]) == 0
    assert "max |onnxruntime - pytorch|" in capsys.readouterr().out
    assert load_model(onnx_path).info.name == "autohr"

    # an old checkpoint, holding the path relative to the training's folder, loads from here too
    old = torch.load(ckpt, map_location="cpu", weights_only=True)
    old["facepulse"]["config"]["model"]["params"]["genotype"] = "runs/tiny_search/genotype.json"
    old_ckpt = ckpt.parent / "old_style.ckpt"
    torch.save(old, old_ckpt)
    assert load_model(old_ckpt).model.backbone.genotype == genotype


# ------------------------------------------------------------------- latency-aware search
def test_op_flops_match_the_hand_count():
    from facepulse.nas.cost import block_voxels, expected_cell_cost, op_cost_table

    c = 4
    table = op_cost_table(TINY_OPS, c, "flops")
    # 3x3x3 conv: 2 * C * 27 per output channel, + BN (2) + ReLU (1), times C channels per voxel
    assert table["conv_3x3x3"] == pytest.approx(c * (2 * c * 27 + 3))
    assert table["conv_1x3x3"] == pytest.approx(c * (2 * c * 9 + 3))
    assert table["tdc_3x3x3_t0.6"] == table["conv_3x3x3"]  # one folded convolution
    assert table["none"] == table["skip"] == 0.0
    assert table["max_pool_3x3x3"] == pytest.approx(27 * c)
    # the AutoHR layout: stem halves the pixels; time halves after blocks 1 and 2
    assert block_voxels(4, 16, 16) == [16 * 64, 8 * 16, 4 * 4, 4 * 1]
    # expected cost: uniform op weights -> mean op cost per edge
    w = torch.full((1, 6, len(TINY_OPS)), 1.0 / len(TINY_OPS))
    costs = torch.tensor([table[n] for n in TINY_OPS])
    got = expected_cell_cost(w, costs, [10, 5])
    assert float(got) == pytest.approx(15 * 6 * float(costs.mean()), rel=1e-5)


def test_higher_cost_weight_derives_a_cheaper_cell(tmp_path, monkeypatch):
    from facepulse.nas.search import run_search

    monkeypatch.chdir(tmp_path)
    config = write_tiny_config(tmp_path, partial_channels=1)
    derived = {}
    for weight in (0.0, 10.0):
        cfg = load_config(config, [f"name=cost_{weight:g}", f"search.cost_weight={weight}"])
        result = run_search(cfg, progress=False)
        derived[weight] = result.cost["derived_cells"]
        assert (result.run_dir / "cost.json").is_file() and (result.run_dir / "op_costs.json").is_file()
        history = read_alpha_history(result.run_dir / "alphas.jsonl")
        assert history[-1]["cost"]["derived_cells"] == pytest.approx(derived[weight])
        # every search also derives a frontier: its own cell first, cheaper cells after
        front = json.loads((result.run_dir / "frontier.json").read_text())
        assert front[0]["penalty"] == 0.0 and front[0]["cells_cost"] == pytest.approx(derived[weight])
        assert as_genotype(result.run_dir / front[0]["file"]) == result.genotype
        assert [c["cells_cost"] for c in front] == sorted((c["cells_cost"] for c in front), reverse=True)
    assert derived[10.0] < derived[0.0]


def test_cost_frontier_trades_search_preference_for_cost():
    """One set of alphas -> cells from the search's own (penalty 0) to cheap ones; the
    cheapest swaps costly ops for cheap ones; costs fall and the search's preference too."""
    from facepulse.models.genotype import all_edges
    from facepulse.nas import derive_genotype
    from facepulse.nas.cost import block_voxels, cost_frontier, genotype_cell_cost, op_cost_table

    rng = np.random.default_rng(0)
    table = op_cost_table(TINY_OPS, 4, "flops")
    alphas = rng.normal(size=(1, len(all_edges(3)), len(TINY_OPS)))
    alphas[..., TINY_OPS.index("conv_3x3x3")] += 3.0  # the search likes the costliest op
    voxels = block_voxels(2, 16, 16)
    front = cost_frontier(alphas, TINY_OPS, 3, table, voxels, penalties=(0, 1, 4, 16, 64))
    assert front[0]["penalty"] == 0 and front[0]["genotype"] == derive_genotype(alphas, TINY_OPS, 3)
    assert len(front) >= 2
    costs = [c["cells_cost"] for c in front]
    assert costs == sorted(costs, reverse=True) and costs[-1] < costs[0]
    assert all(c["cells_cost"] == pytest.approx(genotype_cell_cost(c["genotype"], table, voxels)) for c in front)
    assert front[-1]["log_weight"] < front[0]["log_weight"] <= 0
    assert "conv_3x3x3" not in {e.op for e in front[-1]["genotype"].cells[0]}
    with pytest.raises(ConfigError, match="penalties"):
        cost_frontier(alphas, TINY_OPS, 3, table, voxels, penalties=(-1,))


def test_ubfc_search_config_splits_subjects_and_matches_training():
    """configs/search_ubfc.yaml: real subjects split by subject (search-train / search-val /
    left out), read through the training datamodule, normalised as the training config."""
    from pathlib import Path

    from facepulse.datasets.clips import records_by_split
    from facepulse.nas.search_data import search_datamodule
    from facepulse.train.data import ClipDataModule

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / "configs" / "search_ubfc.yaml", [f"data.split_file={repo}/configs/splits/search_ubfc_a.yaml"])
    train_cfg = load_config(repo / "configs" / "tsnet_ubfc.yaml")
    assert cfg.kind == "search" and cfg.search.synth is None
    assert cfg.model.normalize == train_cfg.model.normalize and cfg.loss.name == train_cfg.loss.name
    assert isinstance(search_datamodule(cfg), ClipDataModule)
    splits = records_by_split(cfg.data, cfg.seed)
    subjects = {role: {r.subject_id for r in recs} for role, recs in splits.items()}
    assert subjects["train"] and subjects["val"] and subjects["test"]
    assert not (subjects["train"] & subjects["val"]) and not (subjects["test"] & (subjects["train"] | subjects["val"]))
    # the three nested-search splits hold every subject out of exactly one search
    held_out = []
    for name in ("a", "b", "c"):
        split_cfg = load_config(repo / "configs" / "search_ubfc.yaml", [f"data.split_file={repo}/configs/splits/search_ubfc_{name}.yaml"])
        held_out += [r.subject_id for r in records_by_split(split_cfg.data, split_cfg.seed)["test"]]
    assert sorted(held_out) == sorted({r.subject_id for recs in splits.values() for r in recs})
