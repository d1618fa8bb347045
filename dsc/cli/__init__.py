"""The command line: one small Typer module per command. No torch, diffusers or h5py at import time."""
