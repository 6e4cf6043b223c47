"""Backends: each turns a Circuit into text files, nothing else."""
