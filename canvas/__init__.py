"""canvas"""
