"""Task builders registered in ``equiscale.registry.TASKS``."""
