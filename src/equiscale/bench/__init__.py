"""equiscale.bench"""
