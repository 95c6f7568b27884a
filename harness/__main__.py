"""`python -m harness STUDY [--jobs N] [--force 1] [--launcher local|slurm] [overrides]`."""

from harness.sweep import main

main()
