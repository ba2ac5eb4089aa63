"""Adapters that wire kdloss into detector frameworks. Installed as ``kdloss.adapters``.

Each adapter depends on kdloss's core; the core never imports an adapter or a framework.
"""
