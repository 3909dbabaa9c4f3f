"""facepulse.io"""
