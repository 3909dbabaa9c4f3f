"""facepulse.augment"""
