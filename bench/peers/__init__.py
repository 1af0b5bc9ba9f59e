"""taskmill beside the task queues users would pick instead: see README.md and run.py."""
