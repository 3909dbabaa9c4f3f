"""facepulse.methods"""
