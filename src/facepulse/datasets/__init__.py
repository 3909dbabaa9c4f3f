"""facepulse.datasets"""
