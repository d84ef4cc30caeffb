"""Training-time data: corpora, token caches and shards, samplers, collators and the DataModules that feed a Task.
The offline pipeline that writes shards is `llmexp.prepare`."""
