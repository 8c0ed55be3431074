"""placeholder"""
class MemoryBudgetError(MemoryError):
    pass
def available_memory(device="cpu"): return None
def check_memory(*a, **k): return None
def estimate_peak_memory(*a, **k): return 0
