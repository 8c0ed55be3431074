"""Results for one structure of a batch are bitwise independent of the other structures' values.

A NaN in one atom's features once reached every other structure of the batch through the padded
neighbour slots of the Wigner-6j convolution (empty slots gathered node 0's features and multiplied
them by 0; 0 * NaN = NaN).
"""

from __future__ import annotations

import pytest
import torch

from equiscale.models.e2former import E2Former
from equiscale.models.egnn_energy import EGNNEnergy
from equiscale.models.gaunt_net import GauntNet
from equiscale.ops import Wigner6jConv
from equiscale.ops.neighbors import neighbor_list


def _two_structures(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    pos_a = 1.0 * torch.randn(10, 3, generator=g, dtype=dtype)  # dense: sets the padding width
    pos_b = 2.0 * torch.randn(5, 3, generator=g, dtype=dtype) + 50.0
    batch = torch.tensor([0] * 10 + [1] * 5)
    return torch.cat([pos_a, pos_b]), batch


@pytest.mark.parametrize("centring", ["structure", "target"])
def test_wigner6j_conv_nan_in_other_structure(centring):
    pos, batch = _two_structures()
    nb = neighbor_list(pos, 3.0, batch=batch)
    g = torch.Generator().manual_seed(1)
    h = torch.randn(15, 9, 4, generator=g, dtype=torch.float64)
    alpha = torch.rand(nb.edge_index.shape[1], 4, generator=g, dtype=torch.float64)
    conv = Wigner6jConv(2, 2, 2, centring=centring)
    ref = conv(h, pos, nb.edge_index, alpha, batch=batch)
    for poison in (float("nan"), float("inf"), 1e30):
        h2 = h.clone()
        h2[12] = poison  # one atom of structure 1 (node 0 of the batch is in structure 0)
        h2[0] = h2[0]
        out = conv(h2, pos, nb.edge_index, alpha, batch=batch)
        assert torch.equal(out[:10], ref[:10]), poison
    h3 = h.clone()
    h3[0] = float("nan")  # node 0 itself: structure 1 must stay clean too
    assert torch.isfinite(conv(h3, pos, nb.edge_index, alpha, batch=batch)[10:]).all()


MODELS = {
    "e2former": lambda: E2Former(
        num_elements=4, channels=8, lmax=2, num_layers=2, heads=2, num_radial=4, cutoff=3.0
    ),
    "gauntnet": lambda: GauntNet(
        num_elements=4, channels=4, lmax=1, lmax_sh=2, num_layers=2, correlation=2, cutoff=3.0
    ),
    "egnn_energy": lambda: EGNNEnergy(num_elements=4, channels=8, num_layers=2, cutoff=3.0),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_structures_independent(name):
    torch.manual_seed(0)
    model = MODELS[name]().double().eval()
    pos, batch = _two_structures()
    z = torch.randint(0, 4, (15,), generator=torch.Generator().manual_seed(2))
    ref = model({"pos": pos, "z": z, "batch": batch})
    # structure 1 moved rigidly (same graph, other values), then with a NaN coordinate
    moved = pos.clone()
    moved[10:] = moved[10:] @ torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0].T + 7.0
    out = model({"pos": moved, "z": z, "batch": batch})
    assert torch.equal(out["energy"][0], ref["energy"][0])
    assert torch.equal(out["forces"][:10], ref["forces"][:10])
    nan = pos.clone()
    nan[12, 1] = float("nan")  # a clear error naming the atom and structure, not a NaN elsewhere
    with pytest.raises(ValueError, match=r"pos must be finite: atom 12 \(structure 1\)"):
        model({"pos": nan, "z": z, "batch": batch})


def test_neighbor_list_rejects_non_finite_cell():
    pos = torch.rand(4, 3, dtype=torch.float64)
    for cell in (
        torch.full((3, 3), float("nan"), dtype=torch.float64),
        torch.eye(3, dtype=torch.float64) * float("inf"),
    ):
        with pytest.raises(ValueError, match="cell must be finite"):
            neighbor_list(pos, 1.0, cell=cell, pbc=True)
    with pytest.raises(ValueError, match="nonzero volume"):
        neighbor_list(pos, 1.0, cell=torch.zeros(3, 3, dtype=torch.float64), pbc=True)
