"""What every part of the pipeline stands on and that knows nothing of images or models: paths,
atomic writes, user errors, content hashes, row files on disk, progress, worker processes, the CPU
kind, the run log, git revisions. Imports nothing else of imgclf."""
