"""Crossband's end-to-end encryption core: sans-IO, no sockets, no clock reads.

Time is always a parameter (``now``: seconds since the epoch, as a float or int).
"""
