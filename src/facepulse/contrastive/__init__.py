"""facepulse.contrastive"""
