"""equiscale.ops"""

from equiscale.ops.long_conv import (
    fft_conv,
    fft_conv_reference,
    fft_cross_conv,
    fft_cross_conv_reference,
    fft_dot_conv,
    fft_dot_conv_reference,
    next_fast_size,
)

__all__ = [
    "fft_conv",
    "fft_conv_reference",
    "fft_cross_conv",
    "fft_cross_conv_reference",
    "fft_dot_conv",
    "fft_dot_conv_reference",
    "next_fast_size",
]
