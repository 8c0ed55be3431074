r"""The Gaunt tensor product: the product of two spherical functions, in SH coefficients.

For features ``x [..., (L1+1)^2, C]`` and ``y [..., (L2+1)^2, C]`` (e3nn real SH,
``normalization="integral"``, channels last) read as spherical functions
``f = sum_{lm} x_{lm} Y_{lm}`` and ``g = sum_{lm} y_{lm} Y_{lm}`` per channel, the product returns the
coefficients of the band-limited projection of the pointwise product,

    out_{l3 m3} = int_{S^2} f g Y_{l3 m3} dOmega = sum G[(l1 m1), (l2 m2), (l3 m3)] x_{l1 m1} y_{l2 m2},

``out [..., (Lout+1)^2, C]``; G is the real Gaunt table (``so3.gaunt``). Leading dims and C broadcast
(C = 1 broadcasts). Equal, per path, to e3nn's "uuu" Clebsch-Gordan product times
``c(l1,l2,l3) = sqrt((2l1+1)(2l2+1)(2l3+1)/(4 pi)) (l1 l2 l3; 0 0 0)``.

**Parity.** G vanishes when ``l1 + l2 + l3`` is odd: the product is symmetric (``x*y = y*x``) and has
no antisymmetric path (no cross product ``1o x 1o -> 1e``). If both inputs have SH parity (-1)^l the
output has SH parity too. Asking for anything else raises; the missing odd paths are offered
explicitly by :class:`CGOddPaths` (a dense Clebsch-Gordan complement, low L).

Back ends (all exact; tests compare each with :func:`gaunt_reference` to 1e-10 in float64):

- ``"dense"``: contraction with the sparse Gaunt table, O(L^5 N); best at small L;
- ``"fourier"``: SH -> 2D Fourier (sparse, v = +-m), zero-padded 2D FFT convolution, Fourier -> SH
  (the paper's algorithm), O(L^3 N);
- ``"grid"``: separable sphere-grid synthesis (Gauss-Legendre x uniform phi), pointwise product,
  projection; O(L^3 N) in dense matrix products;
- ``"auto"``: the fastest for (device type, max degree) from :data:`AUTO_TABLE` (measured on the
  CPU at batch 64 x 16 channels; the CUDA row is not measured yet); the choice is ``module.backend``.

Error budgets (relative: max abs error / max abs output, against the float64 reference; tested):
float32 < 1e-5 for L <= 12 on every back end (measured 2e-7 to 1.2e-6, also at L = 16); bfloat16
< 2e-2 (measured 3e-3 to 7e-3 for L = 2..10: the bf16 rounding of the inputs alone is 4e-3; the
fourier back end computes in complex64 and rounds the result). float64: ~1e-15.

Speed (``equiscale bench tp``, results/bench_tp_cpu.json: 1 CPU thread, batch 64 x 16 channels,
float32, degrees L x L -> L): "grid" is the fastest back end from L = 2 on; at L = 10 it is 53x
(forward) and 36x (forward+backward) faster than e3nn's ``o3.TensorProduct`` on the same "uuu"
paths in the committed run (23x to 71x forward over four runs on a shared 2-core machine), and its
forward time grows like L^3.4 over L = 8..16 (a step at L = 11, where one grid tensor outgrows the
L2 cache; 3.0 to 3.4 over the runs), e3nn's like L^4.6 over 8..12. "fourier" is 15-50x slower than
"grid" on the CPU (batched complex FFTs of small sizes), as Xie et al. (2025) found on GPUs;
"dense" wins at L <= 1.

Many-body products (:func:`gaunt_product`, :func:`gaunt_power`) multiply several inputs in the grid
or Fourier domain: one transform per distinct input, one projection.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from e3nn import o3
from torch import nn

from equiscale.ops._gaunt_dense import DenseGaunt
from equiscale.ops._gaunt_fourier import FourierAnalysis, FourierSynthesis, fourier_multiply
from equiscale.ops._gaunt_grid import GridAnalysis, GridSynthesis
from equiscale.ops._tables import TableModule
from equiscale.so3.grid import sphere_grid_points
from equiscale.so3.spherical_harmonics import real_spherical_harmonics

__all__ = [
    "GauntTensorProduct",
    "GauntProduct",
    "GauntPowers",
    "GridSynthesis",
    "GridAnalysis",
    "CGOddPaths",
    "gaunt_reference",
    "gaunt_product",
    "gaunt_power",
    "BACKENDS",
    "AUTO_TABLE",
    "choose_backend",
]

BACKENDS = ("dense", "fourier", "grid")

# Fastest back end per device type: (largest max-degree, backend) in increasing order.
# cpu: measured (1 thread, batch 64 x 16 channels, float32, forward and forward+backward):
#   dense wins for L <= 1 (0.07 vs 0.12 ms), ties at L = 2, and grid wins from L = 3 on (0.22 vs
#   1.65 ms at L = 3); see results/bench_tp_cpu.json for L >= 1.
# cuda: NOT measured in this repository yet (no GPU was available); grid, because sphere-grid
#   products were measured faster than the 2D-Fourier ones on GPUs (Xie et al. 2025).
AUTO_TABLE: dict[str, list[tuple[int, str]]] = {
    "cpu": [(1, "dense"), (10**9, "grid")],
    "cuda": [(10**9, "grid")],
}


def choose_backend(lmax: int, device: torch.device | str = "cpu") -> str:
    """Back end that ``"auto"`` picks for max degree ``lmax`` on ``device`` (see AUTO_TABLE)."""
    kind = torch.device(device).type
    if kind not in AUTO_TABLE:
        raise ValueError(f"device must be one of {sorted(AUTO_TABLE)} for backend='auto', got {kind!r}")
    for bound, name in AUTO_TABLE[kind]:
        if lmax <= bound:
            return name
    raise AssertionError("unreachable: AUTO_TABLE ends with an unbounded entry")


def _check_degree(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def _check_feature(x: torch.Tensor, lmax: int, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[-2] != (lmax + 1) ** 2:
        raise ValueError(
            f"{name} must have shape [..., {(lmax + 1) ** 2}, C] (degrees 0..{lmax}), got {tuple(x.shape)}"
        )


def _check_pair(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    if x.dtype != y.dtype:
        raise TypeError(f"{names[0]} and {names[1]} must have one dtype, got {x.dtype} and {y.dtype}")
    if x.device != y.device:
        raise ValueError(f"{names[0]} and {names[1]} must be on one device, got {x.device}, {y.device}")
    try:
        torch.broadcast_shapes(x.shape[:-2] + x.shape[-1:], y.shape[:-2] + y.shape[-1:])
    except RuntimeError as error:
        raise ValueError(
            f"leading dims and channels of {names[0]} {tuple(x.shape)} and {names[1]} "
            f"{tuple(y.shape)} must broadcast"
        ) from error


def _align(xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Left-pad leading dims with size-1 axes so every input has the same number of dims (the grid
    back end puts grid axes first, where implicit right-aligned broadcasting would misalign)."""
    ndim = max(x.dim() for x in xs)
    return [x.reshape((1,) * (ndim - x.dim()) + tuple(x.shape)) for x in xs]


def _check_parity(parity: str) -> None:
    if parity != "even":
        raise ValueError(
            f"parity must be 'even', got {parity!r}: the Gaunt product only has paths with "
            "l1 + l2 + l_out even (it is symmetric; there is no antisymmetric path such as the cross "
            "product 1o x 1o -> 1e). For the odd paths use equiscale.ops.CGOddPaths (a dense "
            "Clebsch-Gordan complement), or odd_paths=True on the equiscale.nn Gaunt layers."
        )


class GauntTensorProduct(nn.Module):
    """Gaunt tensor product ``tp(x, y)``: ``[..., (L1+1)^2, C] x [..., (L2+1)^2, C] ->
    [..., (Lout+1)^2, C]`` (module docstring: math, back ends, parity, error budget). No weights.

    Args:
        lmax_in1, lmax_in2, lmax_out: degrees of x, y and the output.
        backend: "dense" | "fourier" | "grid" | "auto" (choice visible as ``self.backend``).
        parity: only "even" exists (see module docstring); anything else raises ValueError.
        device: where "auto" measures its choice for; tables follow ``.to(device)``.

    >>> tp = GauntTensorProduct(1, 1, 2, backend="grid")
    >>> tp(torch.randn(5, 4, 8), torch.randn(5, 4, 1)).shape
    torch.Size([5, 9, 8])
    """

    synth1: nn.Module  # GridSynthesis or FourierSynthesis (grid and fourier back ends)
    synth2: nn.Module
    analysis: nn.Module

    def __init__(
        self,
        lmax_in1: int,
        lmax_in2: int,
        lmax_out: int,
        backend: str = "auto",
        parity: str = "even",
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        _check_degree(lmax_in1, "lmax_in1")
        _check_degree(lmax_in2, "lmax_in2")
        _check_degree(lmax_out, "lmax_out")
        _check_parity(parity)
        if backend == "auto":
            backend = choose_backend(max(lmax_in1, lmax_in2, lmax_out), device)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS + ('auto',)}, got {backend!r}")
        self.lmax_in1, self.lmax_in2, self.lmax_out = lmax_in1, lmax_in2, lmax_out
        self.backend = backend
        degree = lmax_in1 + lmax_in2 + lmax_out
        if backend == "dense":
            self.dense = DenseGaunt(lmax_in1, lmax_in2, lmax_out)
        elif backend == "grid":
            self.synth1 = GridSynthesis(lmax_in1, degree)
            self.synth2 = GridSynthesis(lmax_in2, degree)
            self.analysis = GridAnalysis(lmax_out, degree)
        else:
            self.synth1 = FourierSynthesis(lmax_in1)
            self.synth2 = FourierSynthesis(lmax_in2)
            self.analysis = FourierAnalysis(lmax_out, lmax_in1 + lmax_in2)
        self.to(device)

    @classmethod
    def from_irreps(cls, irreps_in1, irreps_in2, irreps_out, backend: str = "auto") -> GauntTensorProduct:
        """Build from e3nn irreps ``C x 0e + C x 1o + ...`` (or all pseudo ``0o + 1e + ...``),
        raising ValueError for every requested output irrep the Gaunt product cannot give."""
        ins = [o3.Irreps(irreps_in1), o3.Irreps(irreps_in2)]
        signs, lmaxes = [], []
        for name, irreps in zip(("irreps_in1", "irreps_in2"), ins):
            ls = [ir.l for _, ir in irreps]
            sign = {ir.p * (-1) ** ir.l for _, ir in irreps}
            if ls != list(range(len(ls))) or len(sign) != 1:
                raise ValueError(
                    f"{name} must be degrees 0..L with parity (-1)^l (0e+1o+2e...) or all "
                    f"(-1)^(l+1) (0o+1e+2o...), one multiplicity each, got {irreps}"
                )
            signs.append(sign.pop())
            lmaxes.append(ls[-1])
        out = o3.Irreps(irreps_out)
        for _, ir in out:
            wanted = signs[0] * signs[1] * (-1) ** ir.l
            if ir.p != wanted:
                raise ValueError(
                    f"irreps_out asks for {ir}, which only odd (l1 + l2 + l_out) paths give; the "
                    f"Gaunt product gives {o3.Irrep(ir.l, wanted)}. Use CGOddPaths for odd paths."
                )
        ls = [ir.l for _, ir in out]
        if ls != list(range(len(ls))):
            raise ValueError(f"irreps_out must be degrees 0..L, got {out}")
        return cls(lmaxes[0], lmaxes[1], ls[-1], backend=backend)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_feature(x, self.lmax_in1, "x")
        _check_feature(y, self.lmax_in2, "y")
        _check_pair(x, y)
        x, y = _align([x, y])
        if self.backend == "dense":
            return self.dense(x, y)
        if self.backend == "grid":
            return self.analysis(self.synth1(x) * self.synth2(y))
        z = fourier_multiply([self.synth1(x), self.synth2(y)])
        return self.analysis(z, x.dtype)

    def extra_repr(self) -> str:
        return f"{self.lmax_in1}, {self.lmax_in2}, {self.lmax_out}, backend={self.backend!r}"


class GauntProduct(nn.Module):
    """Many-body Gaunt product ``f_1 f_2 ... f_n`` projected onto degrees ``<= lmax_out``, with one
    transform per input and one projection (the grid or Fourier domain is kept between factors).

    ``forward(*xs)`` takes ``n = len(lmax_in)`` features ``[..., (L_i+1)^2, C]``. ``powers`` (default
    all 1) raises input i to ``powers[i]`` in the grid/Fourier domain: ``GauntProduct([L], Lo,
    powers=[nu])`` is ``x^nu`` (the MACE-style many-body power) with a single transform in.
    Back ends: "grid" (pointwise powers) or "fourier" (one zero-padded FFT size for all factors).
    """

    analysis: nn.Module  # GridAnalysis or FourierAnalysis

    def __init__(
        self,
        lmax_in: Sequence[int],
        lmax_out: int,
        powers: Sequence[int] | None = None,
        backend: str = "grid",
    ) -> None:
        super().__init__()
        lmax_in = list(lmax_in)
        if len(lmax_in) == 0:
            raise ValueError("lmax_in must name at least one input degree, got []")
        for i, l in enumerate(lmax_in):
            _check_degree(l, f"lmax_in[{i}]")
        _check_degree(lmax_out, "lmax_out")
        powers = [1] * len(lmax_in) if powers is None else list(powers)
        if len(powers) != len(lmax_in) or any(
            not isinstance(p, int) or isinstance(p, bool) or p < 1 for p in powers
        ):
            raise ValueError(f"powers must be {len(lmax_in)} ints >= 1, got {powers!r}")
        if backend not in ("grid", "fourier"):
            raise ValueError(f"backend must be 'grid' or 'fourier', got {backend!r}")
        self.lmax_in, self.lmax_out, self.powers, self.backend = lmax_in, lmax_out, powers, backend
        degree = sum(l * p for l, p in zip(lmax_in, powers)) + lmax_out
        if backend == "grid":
            self.synth = nn.ModuleList(GridSynthesis(l, degree) for l in lmax_in)
            self.analysis = GridAnalysis(lmax_out, degree)
        else:
            self.synth = nn.ModuleList(FourierSynthesis(l) for l in lmax_in)
            self.analysis = FourierAnalysis(lmax_out, degree - lmax_out)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if len(xs) != len(self.lmax_in):
            raise ValueError(f"xs must be {len(self.lmax_in)} tensors, got {len(xs)}")
        for i, (x, l) in enumerate(zip(xs, self.lmax_in)):
            _check_feature(x, l, f"xs[{i}]")
            _check_pair(xs[0], x, ("xs[0]", f"xs[{i}]"))
        xs = tuple(_align(xs))
        if self.backend == "grid":
            h = None
            for x, synth, p in zip(xs, self.synth, self.powers):
                f = synth(x)
                f = f if p == 1 else f**p
                h = f if h is None else h * f
            return self.analysis(h)
        factors = []
        for x, synth, p in zip(xs, self.synth, self.powers):
            factors.extend([synth(x)] * p)
        return self.analysis(fourier_multiply(factors), xs[0].dtype)


class GauntPowers(nn.Module):
    """All powers ``x^1, ..., x^nu_max`` (projected onto degrees ``<= lmax_out``), stacked:
    ``[..., (L+1)^2, C] -> [nu_max, ..., (lmax_out+1)^2, C]``; one grid synthesis, pointwise powers,
    one (batched) projection. The grid is exact for the highest power (degree ``nu_max L + lmax_out``).
    """

    def __init__(self, lmax_in: int, max_power: int, lmax_out: int) -> None:
        super().__init__()
        _check_degree(lmax_in, "lmax_in")
        _check_degree(lmax_out, "lmax_out")
        if not isinstance(max_power, int) or isinstance(max_power, bool) or max_power < 1:
            raise ValueError(f"max_power must be an int >= 1, got {max_power!r}")
        self.lmax_in, self.max_power, self.lmax_out = lmax_in, max_power, lmax_out
        degree = max_power * lmax_in + lmax_out
        self.synth = GridSynthesis(lmax_in, degree)
        self.analysis = GridAnalysis(lmax_out, degree)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_feature(x, self.lmax_in, "x")
        f = self.synth(x)  # [n_p, n_t, ..., C]
        powers = [f]
        for _ in range(self.max_power - 1):
            powers.append(powers[-1] * f)
        stacked = torch.stack(powers, dim=2)  # [n_p, n_t, nu, ..., C]
        return self.analysis(stacked)  # [nu, ..., Ko, C]


@functools.lru_cache(maxsize=64)
def _cached_product(
    lmax_in: tuple[int, ...], lmax_out: int, powers: tuple[int, ...], backend: str, device: str
) -> GauntProduct:
    return GauntProduct(list(lmax_in), lmax_out, list(powers), backend).to(device)


def gaunt_product(xs: Sequence[torch.Tensor], lmax_out: int, backend: str = "grid") -> torch.Tensor:
    """Functional :class:`GauntProduct` of the features ``xs`` (tables cached per device)."""
    if len(xs) == 0:
        raise ValueError("xs must hold at least one tensor, got []")
    lmax_in = []
    for i, x in enumerate(xs):
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(f"xs[{i}] must be a tensor [..., (L+1)^2, C]")
        lmax_in.append(int(round(x.shape[-2] ** 0.5)) - 1)
    module = _cached_product(tuple(lmax_in), lmax_out, (1,) * len(xs), backend, str(xs[0].device))
    return module(*xs)


def gaunt_power(x: torch.Tensor, nu: int, lmax_out: int, backend: str = "grid") -> torch.Tensor:
    """``x^nu`` (the nu-fold Gaunt product of x with itself): one transform in, one out."""
    if not isinstance(nu, int) or isinstance(nu, bool) or nu < 1:
        raise ValueError(f"nu must be an int >= 1, got {nu!r}")
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError("x must be a tensor [..., (L+1)^2, C]")
    lmax = int(round(x.shape[-2] ** 0.5)) - 1
    return _cached_product((lmax,), lmax_out, (nu,), backend, str(x.device))(x)


def _sh_on_points(lmax: int, points: torch.Tensor) -> torch.Tensor:
    if lmax <= 12:
        return o3.spherical_harmonics(list(range(lmax + 1)), points, True, normalization="integral")
    return real_spherical_harmonics(lmax, points)


def gaunt_reference(*xs: torch.Tensor, lmax_out: int) -> torch.Tensor:
    """Slow, obviously right: evaluate every input on an exact sphere quadrature with
    ``e3nn.o3.spherical_harmonics`` (``so3.real_spherical_harmonics`` beyond l = 12), multiply,
    project: ``out_k = sum_p w_p Y_k(p) prod_i f_i(p)``. Computed in float64, returned in x's dtype.

    ``gaunt_reference(x, y, lmax_out=L)`` is the two-input product; more inputs give the many-body one.
    """
    _check_degree(lmax_out, "lmax_out")
    lmaxes = []
    for i, x in enumerate(xs):
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(f"xs[{i}] must be a tensor [..., (L+1)^2, C]")
        lmaxes.append(int(round(x.shape[-2] ** 0.5)) - 1)
        _check_feature(x, lmaxes[-1], f"xs[{i}]")
    points, weights = sphere_grid_points(sum(lmaxes) + lmax_out)
    points, weights = points.reshape(-1, 3), weights.reshape(-1)  # [P, 3], [P]
    h = None
    for x, l in zip(xs, lmaxes):
        y = _sh_on_points(l, points).to(x.device)  # [P, K]
        f = torch.einsum("pk,...kc->...pc", y, x.double())
        h = f if h is None else h * f
    y_out = _sh_on_points(lmax_out, points).to(xs[0].device) * weights[:, None].to(xs[0].device)
    return torch.einsum("pk,...pc->...kc", y_out, h).to(xs[0].dtype)


class CGOddPaths(TableModule):
    """The paths the Gaunt product lacks: ``l1 + l2 + l3`` odd (e.g. the cross product
    ``1o x 1o -> 1e``), as a dense Clebsch-Gordan contraction for low L (O(L^6)):

        out_{l3 m3} = sum_{paths, l1+l2+l3 odd} sqrt((2l1+1)(2l2+1)/(4 pi)) W3j(l1,l2,l3)_{m1 m2 m3}
                      x_{l1 m1} y_{l2 m2}

    with e3nn's ``wigner_3j``. The output ``[..., (Lout+1)^2, C]`` has pseudo-SH parity
    (-1)^(l+1) when both inputs have SH parity: rotation-equivariant like the Gaunt output, of the
    opposite parity. Antisymmetric where the Gaunt product is symmetric (x.y swapped -> sign
    (-1)^(l1+l2+l3)).
    """

    table: torch.Tensor

    def __init__(self, lmax_in1: int, lmax_in2: int, lmax_out: int) -> None:
        super().__init__()
        _check_degree(lmax_in1, "lmax_in1")
        _check_degree(lmax_in2, "lmax_in2")
        _check_degree(lmax_out, "lmax_out")
        self.lmax_in1, self.lmax_in2, self.lmax_out = lmax_in1, lmax_in2, lmax_out
        table = torch.zeros(
            (lmax_in1 + 1) ** 2, (lmax_in2 + 1) ** 2, (lmax_out + 1) ** 2, dtype=torch.float64
        )
        for l1 in range(lmax_in1 + 1):
            for l2 in range(lmax_in2 + 1):
                for l3 in range(abs(l1 - l2), min(l1 + l2, lmax_out) + 1):
                    if (l1 + l2 + l3) % 2 == 1:
                        w = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
                        scale = ((2 * l1 + 1) * (2 * l2 + 1) / (4 * torch.pi)) ** 0.5
                        table[l1 * l1 : (l1 + 1) ** 2, l2 * l2 : (l2 + 1) ** 2, l3 * l3 : (l3 + 1) ** 2] = (
                            scale * w
                        )
        self.register_table("table", table)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_feature(x, self.lmax_in1, "x")
        _check_feature(y, self.lmax_in2, "y")
        _check_pair(x, y)
        self.check_device(x)
        self.check_device(y, "y")
        return torch.einsum("ijk,...ic,...jc->...kc", self.table.to(x.dtype), x, y)
