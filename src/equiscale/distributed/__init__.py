"""equiscale.distributed: one sequence or structure split over the processes of a torch.distributed
group (context parallelism), exactly equal to the single-process result."""

from equiscale.distributed.long_conv import (
    shard_bounds,
    sharded_fft_conv,
    sharded_fft_cross_conv,
    sharded_fft_cross_dot_conv,
    sharded_fft_dot_conv,
)

__all__ = [
    "shard_bounds",
    "sharded_fft_conv",
    "sharded_fft_cross_conv",
    "sharded_fft_cross_dot_conv",
    "sharded_fft_dot_conv",
]
