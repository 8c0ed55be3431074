"""equiscale.so3: exact tables (no nn.Module). Spherical-harmonic layout, e3nn's real SH to any
degree, real Gaunt coefficients, SH <-> 2D Fourier and SH <-> sphere-grid change-of-basis tables."""

from equiscale.so3.fourier import (
    phi_fourier,
    phi_projection,
    sh_to_fourier,
    theta_fourier,
    theta_projection,
)
from equiscale.so3.gaunt import gaunt_coefficients, gaunt_coefficients_sparse
from equiscale.so3.grid import (
    grid_analysis_tables,
    grid_synthesis_tables,
    padded_sh_index,
    sphere_grid_points,
    sphere_quadrature,
)
from equiscale.so3.layout import (
    from_e3nn,
    lmax_from_dim,
    sh_degrees,
    sh_dim,
    sh_index,
    sh_irreps,
    sh_orders,
    to_e3nn,
)
from equiscale.so3.solid_harmonics import addition_coefficient, solid_harmonics
from equiscale.so3.spherical_harmonics import real_spherical_harmonics
from equiscale.so3.wigner6j import (
    recoupling_coefficient,
    wigner6j_conv_weights,
    wigner_6j,
    wigner_6j_exact,
)

__all__ = [
    "addition_coefficient",
    "recoupling_coefficient",
    "solid_harmonics",
    "wigner6j_conv_weights",
    "wigner_6j",
    "wigner_6j_exact",
    "from_e3nn",
    "gaunt_coefficients",
    "gaunt_coefficients_sparse",
    "grid_analysis_tables",
    "grid_synthesis_tables",
    "lmax_from_dim",
    "padded_sh_index",
    "phi_fourier",
    "phi_projection",
    "real_spherical_harmonics",
    "sh_degrees",
    "sh_dim",
    "sh_index",
    "sh_irreps",
    "sh_orders",
    "sh_to_fourier",
    "sphere_grid_points",
    "sphere_quadrature",
    "theta_fourier",
    "theta_projection",
    "to_e3nn",
]
