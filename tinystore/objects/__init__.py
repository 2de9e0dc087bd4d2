"""The object model: Python objects to trees of nodes and back, in pickle's order.

Nothing here knows about files; :mod:`tinystore.storage` moves the nodes.
"""
