"""facepulse.roi"""
