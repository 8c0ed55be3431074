"""Property checks: each fast operator against its slow reference path on random inputs.

Every ``check_*`` draws inputs from its arguments (degrees, batch shape, channels, dtype, seed),
runs the fast path in that dtype and the reference in float64 on the *same* (already rounded)
inputs, and returns ``(error, budget)`` with

    error = max |fast - reference| / max |reference|        (relative to the largest output)

The budgets are the ones each operator's docstring states (quoted in :data:`BUDGETS`); the tests
(``tests/test_reliability_properties.py``) and the report drive these checks with hypothesis.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

__all__ = [
    "BUDGETS",
    "EXAMPLES",
    "OPERATORS",
    "check_attention",
    "check_gaunt",
    "check_gaunt_conv",
    "check_gaunt_power",
    "check_gaunt_product",
    "check_long_conv",
    "check_wigner6j",
    "check_neighbors",
    "strategies",
]

F64 = torch.float64

#: (float64, float32) relative budgets, from the docstrings:
BUDGETS: dict[str, tuple[float, float]] = {
    # ops/gaunt.py: "tests compare each with gaunt_reference to 1e-10 in float64";
    # "float32 < 1e-5 for L <= 12 on every back end"
    "GauntTensorProduct": (1e-10, 1e-5),
    "gaunt_power": (1e-10, 1e-5),
    # ops/long_conv.py: "float64 ... (tested to 1e-10 ...)"; "float32 ... <= 1e-5 * max|y_ref| for N <= 4096"
    "fft_conv": (1e-10, 1e-5),
    "fft_cross_conv": (1e-10, 1e-5),
    "fft_dot_conv": (1e-10, 1e-5),
    "fft_cross_dot_conv": (1e-10, 1e-5),
    # ops/_wigner6j_conv.py: "float64 agrees with edge_reference to ~1e-12 relative; float32 with
    # 'structure' to ~1e-5 for molecules (a few A across)": 1e-10 and 1e-4 (10x the stated ~1e-5,
    # '~' being approximate; a structure is a few A across here too)
    "Wigner6jConv": (1e-10, 1e-4),
    # ops/neighbors.py: the exact pair set {0 < |r_ij| <= cutoff} (compared as sets: budget 0)
    "neighbor_list": (0.0, 0.0),
    # ops/gaunt.py (many-body products share the two-input budgets)
    "gaunt_product": (1e-10, 1e-5),
    # nn/gaunt.py GauntConv: grid method vs the per-edge GauntTensorProduct "agree to 1e-10 in
    # float64"; float32: the ops' 1e-5
    "GauntConv(grid vs edge)": (1e-10, 1e-5),
    # nn/attention.py states no budget: SDPA vs the written-out softmax, the ops' 1e-10 / 1e-5
    "EquivariantAttention": (1e-10, 1e-5),
}

OPERATORS = tuple(BUDGETS)

#: hypothesis examples per operator (tests and report; the whole property file runs in ~10 s)
EXAMPLES: dict[str, int] = {
    "GauntTensorProduct": 100,
    "gaunt_power": 40,
    "fft_conv": 60,
    "fft_cross_conv": 50,
    "fft_dot_conv": 40,
    "fft_cross_dot_conv": 40,
    "Wigner6jConv": 80,
    "neighbor_list": 40,
    "gaunt_product": 30,
    "GauntConv(grid vs edge)": 30,
    "EquivariantAttention": 40,
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rel(fast: Tensor, ref: Tensor) -> float:
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    err = float((fast.double() - ref.double()).abs().max()) if ref.numel() else 0.0
    return err / scale if scale > 0 else err


def _budget(name: str, dtype: torch.dtype) -> float:
    return BUDGETS[name][0 if dtype == F64 else 1]


def check_gaunt(
    l1: int,
    l2: int,
    lo: int,
    backend: str,
    batch: tuple[int, ...],
    channels: int,
    dtype: torch.dtype,
    seed: int,
) -> tuple[float, float]:
    """GauntTensorProduct(l1, l2, lo, backend) vs gaunt_reference; y broadcasts with C = 1 when
    ``seed`` is odd."""
    from equiscale.ops.gaunt import GauntTensorProduct, gaunt_reference

    g = _gen(seed)
    x = torch.randn(*batch, (l1 + 1) ** 2, channels, generator=g, dtype=F64).to(dtype)
    cy = 1 if seed % 2 else channels
    y = torch.randn(*batch, (l2 + 1) ** 2, cy, generator=g, dtype=F64).to(dtype)
    fast = GauntTensorProduct(l1, l2, lo, backend=backend)(x, y)
    ref = gaunt_reference(x.double(), y.double(), lmax_out=lo)
    assert fast.shape == ref.shape and fast.dtype == dtype, (fast.shape, ref.shape, fast.dtype)
    return _rel(fast, ref), _budget("GauntTensorProduct", dtype)


def check_gaunt_power(
    lmax: int,
    nu: int,
    lo: int,
    backend: str,
    batch: tuple[int, ...],
    channels: int,
    dtype: torch.dtype,
    seed: int,
) -> tuple[float, float]:
    """gaunt_power(x, nu) (one transform, powers on the grid/Fourier domain) vs the reference."""
    from equiscale.ops.gaunt import gaunt_power, gaunt_reference

    x = torch.randn(*batch, (lmax + 1) ** 2, channels, generator=_gen(seed), dtype=F64).to(dtype)
    fast = gaunt_power(x, nu, lo, backend=backend)
    ref = gaunt_reference(*([x.double()] * nu), lmax_out=lo)
    assert fast.shape == ref.shape, (fast.shape, ref.shape)
    return _rel(fast, ref), _budget("gaunt_power", dtype)


def check_long_conv(
    kind: str, n: int, causal: bool, batch: tuple[int, ...], channels: int, dtype: torch.dtype, seed: int
) -> tuple[float, float]:
    """fft_conv / fft_cross_conv / fft_dot_conv / fft_cross_dot_conv vs their direct sums.

    Scalar convolution: ``u [*batch, N, C]`` with a filter ``[N, C]`` (causal) or ``[2N-1, C]``;
    the vector ones: ``q, k [*batch, N, 3]`` (bidirectional k of length N).
    """
    from equiscale.ops import long_conv as lc

    g = _gen(seed)
    if kind == "fft_conv":
        u = torch.randn(*batch, n, channels, generator=g, dtype=F64).to(dtype)
        h = torch.randn(n if causal else 2 * n - 1, channels, generator=g, dtype=F64).to(dtype)
        fast = lc.fft_conv(u, h, causal)
        ref = lc.fft_conv_reference(u.double(), h.double(), causal)
        return _rel(fast, ref), _budget(kind, dtype)
    q = torch.randn(*batch, n, 3, generator=g, dtype=F64).to(dtype)
    k = torch.randn(*batch, n, 3, generator=g, dtype=F64).to(dtype)
    cross = lc.fft_cross_conv_reference(q.double(), k.double(), causal)
    dot = lc.fft_dot_conv_reference(q.double(), k.double(), causal)
    if kind == "fft_cross_conv":
        return _rel(lc.fft_cross_conv(q, k, causal), cross), _budget(kind, dtype)
    if kind == "fft_dot_conv":
        return _rel(lc.fft_dot_conv(q, k, causal), dot), _budget(kind, dtype)
    c, d = lc.fft_cross_dot_conv(q, k, causal)
    return max(_rel(c, cross), _rel(d, dot)), _budget("fft_cross_dot_conv", dtype)


def check_wigner6j(
    lmax_in: int,
    l_filter: int,
    lmax_out: int,
    n_nodes: int,
    channels: int,
    centring: str,
    parity: str,
    dtype: torch.dtype,
    seed: int,
) -> tuple[float, float]:
    """Wigner6jConv (node-level factorisation) vs edge_reference on a random molecule-sized graph
    (atoms in a 3 A box, every pair closer than 2.5 A an edge; alpha [E, C] when seed is odd)."""
    from equiscale.ops import Wigner6jConv

    g = _gen(seed)
    pos = (3.0 * torch.rand(n_nodes, 3, generator=g, dtype=F64)).to(dtype)
    h = torch.randn(n_nodes, (lmax_in + 1) ** 2, channels, generator=g, dtype=F64).to(dtype)
    ii, jj = torch.meshgrid(torch.arange(n_nodes), torch.arange(n_nodes), indexing="ij")
    keep = (ii != jj) & ((pos.double()[ii] - pos.double()[jj]).norm(dim=-1) < 2.5)
    edge_index = torch.stack([jj[keep], ii[keep]])
    e = edge_index.shape[1]
    shape = (e, channels) if seed % 2 else (e,)
    alpha = torch.rand(*shape, generator=g, dtype=F64).to(dtype)
    conv = Wigner6jConv(lmax_in, lmax_out, l_filter, parity=parity, centring=centring)
    fast = conv(h, pos, edge_index, alpha)
    ref = conv.reference(h.double(), pos.double(), edge_index, alpha.double())
    return _rel(fast, ref), _budget("Wigner6jConv", dtype)


def check_neighbors(
    n: int, cutoff: float, periodic: bool, dtype: torch.dtype, seed: int
) -> tuple[float, float]:
    """neighbor_list vs brute force over all pairs (and the 27 nearest images when periodic, with
    ``cutoff`` below half the box): returns (number of differing pairs, 0)."""
    from equiscale.ops.neighbors import neighbor_list

    box = 4.0
    pos = (box * torch.rand(n, 3, generator=_gen(seed), dtype=F64)).to(dtype)
    cell = box * torch.eye(3, dtype=dtype) if periodic else None
    nb = neighbor_list(pos, cutoff, cell=cell, pbc=periodic)
    got = {(int(j), int(i), *map(int, s)) for (j, i), s in zip(nb.edge_index.T.tolist(), nb.cell_shifts)}
    want = set()
    images = list(itertools.product((-1, 0, 1), repeat=3)) if periodic else [(0, 0, 0)]
    p64 = pos.double()
    for i in range(n):
        for j in range(n):
            for s in images:
                r = p64[i] - p64[j] - box * torch.tensor(s, dtype=F64)
                d = float(r.norm())
                if 0 < d <= cutoff:
                    want.add((j, i, *s))
    edges_ok = (nb.edge_index[1][1:] >= nb.edge_index[1][:-1]).all() if nb.edge_index.shape[1] > 1 else True
    assert bool(edges_ok), "edges are not sorted by target"
    return float(len(got ^ want)), 0.0


def check_gaunt_product(
    lmaxes: tuple[int, ...],
    lo: int,
    backend: str,
    batch: tuple[int, ...],
    channels: int,
    dtype: torch.dtype,
    seed: int,
) -> tuple[float, float]:
    """gaunt_product of 2-3 inputs of different degrees (one transform each) vs the reference."""
    from equiscale.ops.gaunt import gaunt_product, gaunt_reference

    g = _gen(seed)
    xs = [torch.randn(*batch, (l + 1) ** 2, channels, generator=g, dtype=F64).to(dtype) for l in lmaxes]
    fast = gaunt_product(xs, lo, backend=backend)
    ref = gaunt_reference(*[x.double() for x in xs], lmax_out=lo)
    return _rel(fast, ref), _budget("gaunt_product", dtype)


def check_gaunt_conv(
    lmax_in: int, lmax_sh: int, lmax_out: int, n_nodes: int, channels: int, dtype: torch.dtype, seed: int
) -> tuple[float, float]:
    """GauntConv(method="grid") vs GauntConv(method="edge") with the same weights on a random graph."""
    from equiscale.nn.gaunt import GauntConv

    torch.manual_seed(seed)
    grid = GauntConv(lmax_in, lmax_sh, lmax_out, channels, method="grid", cutoff=3.0).to(dtype)
    edge = GauntConv(lmax_in, lmax_sh, lmax_out, channels, method="edge", backend="dense", cutoff=3.0)
    edge.load_state_dict(grid.state_dict(), strict=False)
    g = _gen(seed)
    pos = (2.5 * torch.rand(n_nodes, 3, generator=g, dtype=F64)).to(dtype)
    x = torch.randn(n_nodes, (lmax_in + 1) ** 2, channels, generator=g, dtype=F64).to(dtype)
    ii, jj = torch.meshgrid(torch.arange(n_nodes), torch.arange(n_nodes), indexing="ij")
    edge_index = torch.stack([jj[ii != jj], ii[ii != jj]])
    fast = grid(x, pos, edge_index)
    ref = edge.double()(x.double(), pos.double(), edge_index)
    return _rel(fast, ref), _budget("GauntConv(grid vs edge)", dtype)


def check_attention(
    n: int, heads: int, ds: int, dv: int, causal: bool, batch: int, dtype: torch.dtype, seed: int
) -> tuple[float, float]:
    """EquivariantAttention (one SDPA call, heads flattened) vs equivariant_attention_reference per
    head with the module's own projections."""
    from equiscale.nn.attention import EquivariantAttention, equivariant_attention_reference

    torch.manual_seed(seed)
    cs, cv = heads * ds, heads * dv
    module = EquivariantAttention(cs, cv, heads, causal=causal).to(dtype)
    g = _gen(seed)
    s = torch.randn(batch, n, cs, generator=g, dtype=F64).to(dtype)
    v = torch.randn(batch, n, 3, cv, generator=g, dtype=F64).to(dtype)
    fast_s, fast_v = module(s, v)
    m64 = module.double()
    s64, v64 = s.double(), v.double()
    qs, ks, ws = m64.scalar_in(s64).split(cs, dim=-1)
    qv, kv, wv = m64.vector_in(v64).split(cv, dim=-1)
    outs_s, outs_v = [], []
    for h in range(heads):
        a, b = slice(h * ds, (h + 1) * ds), slice(h * dv, (h + 1) * dv)
        o_s, o_v = equivariant_attention_reference(
            qs[..., a], ks[..., a], ws[..., a], qv[..., b], kv[..., b], wv[..., b], causal=causal
        )
        outs_s.append(o_s)
        outs_v.append(o_v)
    ref_s = m64.scalar_out(torch.cat(outs_s, -1))
    ref_v = m64.vector_out(torch.cat(outs_v, -1))
    return max(_rel(fast_s, ref_s), _rel(fast_v, ref_v)), _budget("EquivariantAttention", dtype)


def strategies() -> dict[str, object]:
    """Hypothesis strategies, one per operator: each draws the keyword arguments of its check."""
    from hypothesis import strategies as st

    dtypes = st.sampled_from([torch.float32, torch.float64])
    batch = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)
    seed = st.integers(0, 2**16)
    gaunt = st.fixed_dictionaries(
        {
            "l1": st.integers(0, 4),
            "l2": st.integers(0, 4),
            "lo": st.integers(0, 5),
            "backend": st.sampled_from(["dense", "fourier", "grid"]),
            "batch": batch,
            "channels": st.integers(1, 4),
            "dtype": dtypes,
            "seed": seed,
        }
    )
    power = st.fixed_dictionaries(
        {
            "lmax": st.integers(0, 3),
            "nu": st.integers(1, 3),
            "lo": st.integers(0, 4),
            "backend": st.sampled_from(["grid", "fourier"]),
            "batch": batch,
            "channels": st.integers(1, 3),
            "dtype": dtypes,
            "seed": seed,
        }
    )

    def conv(kind: str):
        return st.fixed_dictionaries(
            {
                "kind": st.just(kind),
                "n": st.integers(1, 40),
                "causal": st.booleans(),
                "batch": batch,
                "channels": st.integers(1, 5),
                "dtype": dtypes,
                "seed": seed,
            }
        )

    w6j = st.fixed_dictionaries(
        {
            "lmax_in": st.integers(0, 2),
            "l_filter": st.integers(0, 2),
            "lmax_out": st.integers(0, 2),
            "n_nodes": st.integers(2, 7),
            "channels": st.integers(1, 3),
            "centring": st.sampled_from(["structure", "target"]),
            "parity": st.sampled_from(["all", "even"]),
            "dtype": dtypes,
            "seed": seed,
        }
    )
    nbrs = st.fixed_dictionaries(
        {
            "n": st.integers(0, 12),
            "cutoff": st.floats(0.3, 1.9),
            "periodic": st.booleans(),
            "dtype": dtypes,
            "seed": seed,
        }
    )
    return {
        "GauntTensorProduct": (check_gaunt, gaunt),
        "gaunt_power": (check_gaunt_power, power),
        "fft_conv": (check_long_conv, conv("fft_conv")),
        "fft_cross_conv": (check_long_conv, conv("fft_cross_conv")),
        "fft_dot_conv": (check_long_conv, conv("fft_dot_conv")),
        "fft_cross_dot_conv": (check_long_conv, conv("fft_cross_dot_conv")),
        "Wigner6jConv": (check_wigner6j, w6j),
        "neighbor_list": (check_neighbors, nbrs),
        "gaunt_product": (
            check_gaunt_product,
            st.fixed_dictionaries(
                {
                    "lmaxes": st.lists(st.integers(0, 3), min_size=2, max_size=3).map(tuple),
                    "lo": st.integers(0, 4),
                    "backend": st.sampled_from(["grid", "fourier"]),
                    "batch": batch,
                    "channels": st.integers(1, 3),
                    "dtype": dtypes,
                    "seed": seed,
                }
            ),
        ),
        "GauntConv(grid vs edge)": (
            check_gaunt_conv,
            st.fixed_dictionaries(
                {
                    "lmax_in": st.integers(0, 2),
                    "lmax_sh": st.integers(0, 2),
                    "lmax_out": st.integers(0, 2),
                    "n_nodes": st.integers(2, 6),
                    "channels": st.integers(1, 3),
                    "dtype": dtypes,
                    "seed": seed,
                }
            ),
        ),
        "EquivariantAttention": (
            check_attention,
            st.fixed_dictionaries(
                {
                    "n": st.integers(1, 24),
                    "heads": st.integers(1, 3),
                    "ds": st.integers(1, 4),
                    "dv": st.integers(1, 3),
                    "causal": st.booleans(),
                    "batch": st.integers(1, 2),
                    "dtype": dtypes,
                    "seed": seed,
                }
            ),
        ),
    }
