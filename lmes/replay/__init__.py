"""lmes/replay"""
