"""Degenerate geometry: coincident, collinear, coplanar, symmetric, far and tiny/huge point
clouds give finite outputs and derivatives (``tests/test_reliability_geometry.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from reliability_catalogue.common import (
    F64,
    Degenerate,
    _e2former,
    _egnn,
    _frame_avg,
    _gauntnet,
    _hyena,
    _randn,
    _transformer,
    _w6j,
)


def _geometries(n: int = 5) -> dict[str, Tensor]:
    """Point clouds ``[n, 3]`` (float64) that break naive code."""
    g = _randn(n, 3, dtype=F64, seed=7)
    line = torch.linspace(-1.0, 1.0, n, dtype=F64)[:, None] * torch.tensor([0.6, 0.0, 0.8], dtype=F64)
    plane = g * torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    coinc = g.clone()
    coinc[1] = coinc[0]  # r_01 = 0
    tetra = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1], [0, 0, 0]], dtype=F64)[:n]
    return {
        "coincident pair (r_ij = 0)": coinc,
        "all points coincident": torch.zeros(n, 3, dtype=F64) + 0.3,
        "collinear": line,
        "coplanar": plane,
        "tetrahedron + centre (triple eigenvalue)": tetra,
        "1e4 from the origin": g + 1e4,
        "tiny scale (1e-6)": 1e-6 * g,
        "huge scale (1e3, beyond the cutoff)": 1e3 * g,
    }


def _energy_force_case(build: Callable[[], Any], pos: Tensor) -> dict[str, Tensor]:
    """Energy, forces and the second derivatives a force loss needs (params and positions)."""
    model = build().double().train()
    p = pos.clone().requires_grad_(True)
    out = model({"pos": p, "z": torch.arange(p.shape[0]) % 3 + 1})
    loss = out["energy"].pow(2).sum() + out["forces"].pow(2).sum()
    params = [q for q in model.parameters() if q.requires_grad]
    grads = torch.autograd.grad(loss, [p, *params], allow_unused=True)
    result = {
        "energy": out["energy"].detach(),
        "forces": out["forces"].detach(),
        "d(loss)/d(pos) (2nd derivative)": grads[0] if grads[0] is not None else torch.zeros(1),
    }
    flat = [g.reshape(-1) for g in grads[1:] if g is not None]
    result["d(loss)/d(params) (2nd derivative)"] = torch.cat(flat) if flat else torch.zeros(1)
    return result


def _point_model_case(build: Callable[[], Any], batch: dict[str, Tensor], pos_key: str) -> dict[str, Tensor]:
    model = build().double().train()
    batch = dict(batch)
    p = batch[pos_key].clone().requires_grad_(True)
    batch[pos_key] = p
    out = model(batch)
    params = [q for q in model.parameters() if q.requires_grad]
    grads = torch.autograd.grad(out.pow(2).sum(), [p, *params], allow_unused=True)
    flat = [g.reshape(-1) for g in grads[1:] if g is not None]
    return {"output": out.detach(), "d/d(pos)": grads[0], "d/d(params)": torch.cat(flat)}


def _w6j_case(pos: Tensor, centring: str, reference: bool) -> dict[str, Tensor]:
    from equiscale.ops import neighbors

    h = _randn(pos.shape[0], 4, 2, dtype=F64).requires_grad_(True)
    p = pos.clone().requires_grad_(True)
    n = pos.shape[0]
    ei = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")).reshape(2, -1)
    ei = ei[:, ei[0] != ei[1]]  # complete graph, coincident pairs included
    conv = _w6j(centring=centring)
    fn = conv.reference if reference else conv
    out = fn(h, p, ei, torch.ones(ei.shape[1], dtype=F64))
    gp, gh = torch.autograd.grad(out.pow(2).sum(), [p, h])
    del neighbors
    return {"output": out.detach(), "d/d(pos)": gp, "d/d(h)": gh}


def _gaunt_conv_case(pos: Tensor, method: str, odd: bool) -> dict[str, Tensor]:
    """GauntConv on a complete graph (radial weights re-drawn so the geometry matters): output,
    gradient and second derivative (of the squared gradient) w.r.t. positions."""
    from equiscale.nn.gaunt import GauntConv

    torch.manual_seed(0)
    conv = GauntConv(1, 2, 1, 2, method=method, odd_paths=odd, cutoff=3.0).double()
    torch.nn.init.normal_(conv.radial[-1].weight)
    n = pos.shape[0]
    ei = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")).reshape(2, -1)
    ei = ei[:, ei[0] != ei[1]]
    p = pos.clone().requires_grad_(True)
    out = conv(_randn(n, 4, 2, dtype=F64), p, ei)
    (g,) = torch.autograd.grad(out.pow(2).sum(), p, create_graph=True)
    (g2,) = torch.autograd.grad(g.pow(2).sum(), p)
    return {"output": out.detach(), "d/d(pos)": g.detach(), "second derivative": g2}


def degenerate_cases() -> list[Degenerate]:
    """Degenerate geometry for the operators and models: outputs, gradients and (for energy/force
    models) the second derivatives a force loss needs must be finite."""
    cases: list[Degenerate] = []
    geoms = _geometries()

    def add(
        entry: str,
        what: str,
        call: Callable[[], dict[str, Tensor]],
        check: Callable[[dict[str, Tensor]], None] = lambda out: None,
    ) -> None:
        cases.append(Degenerate(entry, what, call, check))

    for what, pos in geoms.items():
        if "huge" in what:
            continue  # edges are given explicitly here: the huge cloud is just another scale
        for centring in ("structure", "target"):
            add(
                "Wigner6jConv",
                f"{what}, centring={centring}",
                lambda p=pos, c=centring: _w6j_case(p, c, False),
            )
        add("edge_reference", what, lambda p=pos: _w6j_case(p, "structure", True))
    for what, pos in geoms.items():
        add("E2Former", what, lambda p=pos: _energy_force_case(_e2former, p))
        add("GauntNet", what, lambda p=pos: _energy_force_case(_gauntnet, p))
        batch = {
            "loc": pos[None],
            "vel": torch.ones(1, pos.shape[0], 3, dtype=F64),
            "charges": torch.ones(1, pos.shape[0], dtype=F64),
        }
        add("EGNN", what, lambda b=batch: _point_model_case(_egnn, b, "loc"))
        recall = {"pos": pos[None], "token_type": torch.ones(1, pos.shape[0], 3, dtype=F64)}
        add("SE3HyenaNet", what, lambda b=recall: _point_model_case(_hyena, b, "pos"))
        add("EquivariantTransformer", what, lambda b=recall: _point_model_case(_transformer, b, "pos"))
        degenerate_spectrum = any(w in what for w in ("all points coincident", "collinear", "tetrahedron"))

        def fa_check(out: dict[str, Tensor], expect: bool = degenerate_spectrum) -> None:
            if expect:
                assert bool(out["degenerate flag"].all()), "repeated eigenvalues were not flagged"

        def fa_call(b=recall) -> dict[str, Tensor]:
            out = _point_model_case(_frame_avg, b, "pos")
            from equiscale.models.frame_averaging import pca_frames

            out["degenerate flag"] = pca_frames(b["pos"])[2].to(F64)
            return out

        add("FrameAveraging", what, fa_call, fa_check)
    for method in ("grid", "edge"):
        for odd in (False, True):
            for what in ("coincident pair (r_ij = 0)", "all points coincident", "tiny scale (1e-6)"):
                add(
                    f"GauntConv(method={method!r}, odd_paths={odd})",
                    what,
                    lambda m=method, o=odd, p=geoms[what]: _gaunt_conv_case(p, m, o),
                )
    from equiscale.ops import neighbors

    add(
        "neighbor_list",
        "coincident pair: edge_vectors finite, both directions listed",
        lambda: {
            "r": neighbors.edge_vectors(
                geoms["coincident pair (r_ij = 0)"],
                neighbors.neighbor_list(geoms["coincident pair (r_ij = 0)"], 2.0).edge_index,
            )
        },
    )
    return cases
