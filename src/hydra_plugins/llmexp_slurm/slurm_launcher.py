"""hydra-submitit-launcher's SLURM launcher, with llmexp's job watcher: while the sweep waits, each job's state and
log file are printed when they change, and sites without SLURM accounting get no sacct errors
(llmexp.sweeps.slurm_jobs)."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class WatchedSlurmLauncher(SlurmLauncher):
    """conf/hydra/launcher/slurm.yaml: every setting of submitit_slurm."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from llmexp.sweeps.slurm_jobs import watching

        with watching(self.params["submitit_folder"]):
            return super().launch(job_overrides, initial_job_idx)
