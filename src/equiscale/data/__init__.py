"""equiscale.data"""
