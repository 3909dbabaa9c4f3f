"""facepulse.train"""
