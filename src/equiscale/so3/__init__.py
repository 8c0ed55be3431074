"""equiscale.so3"""
