"""equiscale.ops"""
