"""facepulse.synth"""
