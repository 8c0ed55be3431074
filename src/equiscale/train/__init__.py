"""equiscale.train"""
