"""facepulse.losses"""
