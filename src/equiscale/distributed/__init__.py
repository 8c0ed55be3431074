"""equiscale.distributed: one sequence or structure split over the processes of a torch.distributed
group (context parallelism), exactly equal to the single-process result."""

from equiscale.distributed.halo import halo_exchange, sharded_local_block
from equiscale.distributed.long_conv import (
    communication_bytes,
    shard_bounds,
    sharded_fft_conv,
    sharded_fft_cross_conv,
    sharded_fft_cross_dot_conv,
    sharded_fft_dot_conv,
)
from equiscale.distributed.shard import (
    Shard,
    all_reduce_gradients,
    all_reduce_max,
    all_reduce_sum,
    connect,
    fetch_windows,
    gather_rows,
)

__all__ = [
    "communication_bytes",
    "Shard",
    "all_reduce_gradients",
    "all_reduce_max",
    "all_reduce_sum",
    "connect",
    "fetch_windows",
    "gather_rows",
    "halo_exchange",
    "sharded_local_block",
    "shard_bounds",
    "sharded_fft_conv",
    "sharded_fft_cross_conv",
    "sharded_fft_cross_dot_conv",
    "sharded_fft_dot_conv",
]
