"""lmes/executor"""
