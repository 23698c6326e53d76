"""Acquiring the base model and voices, and rebuilding an fp32 reference from int8."""
