"""An equiscale operator inside an e3nn model: e3nn layers on ``Irreps`` tensors, a Gaunt tensor
product in the middle, and a check that the whole model is rotation-equivariant.

equiscale keeps spherical features as ``[..., (L+1)^2, C]`` (e3nn's real spherical harmonics and
m-order, channels last); ``to_e3nn`` / ``from_e3nn`` convert to and from e3nn's channel-major
``Irreps`` layout ``C x 0e + C x 1o + C x 2e + ...``, so the two libraries mix freely.

Needs only the core install (``pip install equiscale``)::

    python examples/gaunt_in_e3nn_model.py
"""

from __future__ import annotations

import argparse

import torch
from e3nn import o3

from equiscale import GauntTensorProduct
from equiscale.so3 import from_e3nn, sh_irreps, to_e3nn


class GauntBlock(torch.nn.Module):
    """e3nn Linear -> Gaunt self-product x * x (equiscale) -> e3nn Linear.

    Input and output: e3nn tensors ``[N, irreps.dim]`` with ``irreps = sh_irreps(lmax, channels)``.
    """

    def __init__(self, lmax: int, channels: int) -> None:
        super().__init__()
        self.lmax, self.channels = lmax, channels
        self.irreps = sh_irreps(lmax, channels)  # C x 0e + C x 1o + C x 2e + ...
        self.linear_in = o3.Linear(self.irreps, self.irreps)
        self.tp = GauntTensorProduct(lmax, lmax, lmax, backend="dense")
        self.linear_out = o3.Linear(self.irreps, self.irreps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, irreps.dim]
        h = from_e3nn(self.linear_in(x), self.lmax, self.channels)  # [N, (L+1)^2, C]
        h = self.tp(h, h)  # [N, (L+1)^2, C]: band-limited product of the two spherical functions
        return self.linear_out(to_e3nn(h)) + x  # [N, irreps.dim]


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmax", type=int, default=2)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=16)
    args = parser.parse_args(argv)

    torch.set_default_dtype(torch.float64)  # e3nn builds its rotation matrices in the default dtype
    torch.manual_seed(0)
    model = GauntBlock(args.lmax, args.channels)
    x = model.irreps.randn(args.nodes, -1, dtype=torch.float64)
    rot = o3.rand_matrix(dtype=torch.float64)
    D = model.irreps.D_from_matrix(rot)  # the rotation acting on the e3nn features

    error = (model(x @ D.T) - model(x) @ D.T).abs().max().item()
    print(
        f"GauntBlock {model.irreps}: output {tuple(model(x).shape)}, equivariance error {error:.2e} (float64)"
    )
    if error > 1e-9:
        raise SystemExit(f"not equivariant: {error}")
    return error


if __name__ == "__main__":
    main()
