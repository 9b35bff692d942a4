"""lmes/sim"""
