"""gradprop: property-based gradient verification for hand-written numpy layers."""
__version__ = "0.1.0"
