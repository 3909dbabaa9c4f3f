"""facepulse.signal"""
