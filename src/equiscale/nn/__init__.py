"""equiscale.nn"""
