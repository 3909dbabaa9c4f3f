"""facepulse.face"""
