"""Shared by the tools: make ``lib/`` importable when posezoo is not installed."""
import os
import sys

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)
