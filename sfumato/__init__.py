"""sfumato"""
