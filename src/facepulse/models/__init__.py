"""facepulse.models"""
