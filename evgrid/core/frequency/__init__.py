"""Frequency response, the pure part: programs, the quantised response, restore, evidence."""
