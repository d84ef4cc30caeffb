"""Everything that reads or writes a saved thing: training checkpoints (atomic, digested, safely loaded), inference
loading, sharded consolidation, `init_from` weights, and Hugging Face directories."""
