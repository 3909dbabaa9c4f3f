"""facepulse.nas"""
