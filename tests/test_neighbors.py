"""neighbor_list (vesin cell lists) against an O(N^2) brute-force search over periodic images."""

from __future__ import annotations

import itertools

import pytest
import torch

from equiscale.ops.neighbors import edge_vectors, neighbor_list


def brute_force(pos, cutoff, batch, cell=None, pbc=None):
    """Set of (j, i, sx, sy, sz): all images of j within cutoff of i (i != j or nonzero shift)."""
    pairs = set()
    for k in range(int(batch.max()) + 1):
        idx = (batch == k).nonzero().flatten().tolist()
        per = pbc[k] if pbc is not None else [False] * 3
        rng = [range(-2, 3) if p else range(1) for p in per]
        for s in itertools.product(*rng):
            shift = torch.tensor(s, dtype=pos.dtype) @ cell[k] if cell is not None else 0.0
            for i in idx:
                for j in idx:
                    if i == j and not any(s):
                        continue
                    if float((pos[i] - pos[j] - shift).norm()) <= cutoff:
                        pairs.add((j, i, *s))
    return pairs


def as_set(nb):
    return {(int(j), int(i), *map(int, s)) for (j, i), s in zip(nb.edge_index.T, nb.cell_shifts)}


def test_molecules_batched_equal_brute_force():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(30, 3, generator=g, dtype=torch.float64) * 2
    batch = torch.tensor([0] * 10 + [1] * 5 + [2] * 15)
    nb = neighbor_list(pos, 2.5, batch=batch)
    assert as_set(nb) == brute_force(pos, 2.5, batch)
    assert nb.edge_index.shape[1] == len(as_set(nb))  # no duplicates
    assert (batch[nb.edge_index[0]] == batch[nb.edge_index[1]]).all()
    assert torch.equal(nb.shifts, torch.zeros_like(nb.shifts))
    # sorted by target
    assert (nb.edge_index[1][1:] >= nb.edge_index[1][:-1]).all()


def test_periodic_mixed_structures_equal_brute_force():
    g = torch.Generator().manual_seed(1)
    cell = torch.stack(
        [
            torch.eye(3, dtype=torch.float64) * 4.0,
            torch.tensor([[5.0, 0, 0], [1.0, 4.5, 0], [0.5, 0.3, 5.2]], dtype=torch.float64),
        ]
    )
    frac = torch.rand(20, 3, generator=g, dtype=torch.float64)
    batch = torch.tensor([0] * 8 + [1] * 12)
    pos = torch.einsum("nk,nkx->nx", frac, cell[batch])
    pbc = torch.tensor([[True, True, True], [True, False, True]])
    nb = neighbor_list(pos, 3.0, batch=batch, cell=cell, pbc=pbc)
    assert as_set(nb) == brute_force(pos, 3.0, batch, cell, pbc.tolist())
    r = edge_vectors(pos, nb.edge_index, nb.shifts)
    assert float(r.norm(dim=1).max()) <= 3.0
    expected_shifts = torch.einsum("ek,ekx->ex", nb.cell_shifts.double(), cell[batch[nb.edge_index[1]]])
    torch.testing.assert_close(nb.shifts, expected_shifts)


def test_shifts_are_differentiable_in_cell():
    cell = (torch.eye(3, dtype=torch.float64) * 3.0).requires_grad_(True)
    pos = torch.tensor([[0.1, 0.2, 0.3], [1.5, 1.4, 1.6]], dtype=torch.float64)
    nb = neighbor_list(pos, 2.9, cell=cell, pbc=True)
    assert nb.edge_index.shape[1] > 2
    (g,) = torch.autograd.grad(edge_vectors(pos, nb.edge_index, nb.shifts).pow(2).sum(), cell)
    assert g.abs().sum() > 0


def test_empty_and_bad_inputs():
    nb = neighbor_list(torch.zeros(0, 3), 2.0)
    assert nb.edge_index.shape == (2, 0) and nb.shifts.shape == (0, 3)
    nb = neighbor_list(torch.tensor([[0.0, 0, 0], [5.0, 0, 0]]), 2.0)
    assert nb.edge_index.shape == (2, 0)
    with pytest.raises(ValueError, match="cutoff"):
        neighbor_list(torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="pos must have shape"):
        neighbor_list(torch.zeros(2, 2), 1.0)
    with pytest.raises(ValueError, match="no cell"):
        neighbor_list(torch.zeros(2, 3), 1.0, pbc=True)
    with pytest.raises(ValueError, match="batch must be sorted"):
        neighbor_list(torch.zeros(3, 3), 1.0, batch=torch.tensor([1, 0, 1]))


def test_huge_cutoff_is_every_pair():
    """A cutoff far beyond the structure (once ~cutoff^3 work: 40 s for 2 atoms at 3000 A) gives
    every ordered pair, sorted by target then source, with zero shifts."""
    pos = torch.rand(7, 3, dtype=torch.float64) * 2.0
    huge = neighbor_list(pos, 3000.0)
    dst, src = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    keep = dst != src
    assert torch.equal(huge.edge_index, torch.stack([src[keep], dst[keep]]))
    assert huge.shifts.abs().max() == 0
    small = neighbor_list(pos, 1.0)  # the cell-list path agrees on a subset
    pairs = set(map(tuple, huge.edge_index.T.tolist()))
    assert set(map(tuple, small.edge_index.T.tolist())) <= pairs
