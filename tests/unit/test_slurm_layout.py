"""A training process started by srun takes its process layout from the SLURM job; elsewhere the config decides."""

from llmexp.training.slurm import follow_slurm_layout


def test_a_process_started_by_srun_takes_nodes_and_tasks_per_node_from_the_job(make_cfg, monkeypatch):
    cfg = make_cfg("experiment=smoke")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_JOB_NAME", "llmexp-train")
    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    follow_slurm_layout(cfg)
    assert (cfg.trainer.num_nodes, cfg.trainer.devices) == (2, 2)


def test_outside_an_srun_task_the_config_decides(make_cfg, monkeypatch):
    cfg = make_cfg("experiment=smoke", "trainer.devices=1")
    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME", "SLURM_NNODES", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(name, raising=False)
    follow_slurm_layout(cfg)
    assert (cfg.trainer.num_nodes, cfg.trainer.devices) == (1, 1)
