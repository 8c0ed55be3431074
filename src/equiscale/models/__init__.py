"""equiscale.models"""
