"""facepulse.eval"""
