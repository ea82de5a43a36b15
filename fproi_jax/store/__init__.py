"""The run folder and its one owner: what a run writes, where, and how it is read back.

Layout of a run's workdir (every writer goes through this package):

  config.json          the resolved config of the run (config_file.py), written atomically
  config_changes.jsonl one line per resume that changed an allowed field (config_file.py)
  .lock                held by the one process that trains into the folder (lock.py)
  checkpoints/<step>/  Orbax training checkpoints (checkpoints.py)
  export               the inference export (export.py): a link to the newest complete
  export_versions/     version in export_versions/, swapped in one rename
  eval/<label>/        its evaluations (runs.eval_dir), with the experiment's marker of
                       what produced them (runs.is_done / mark_done)
  metrics.jsonl        the logged losses, a line per log step (metrics_log.py)
  samples/, tensorboard/, synthetic/   written by training and synthesis
runs.py reads a run back (load_generators: an export or a workdir's latest checkpoint,
without building an optimizer) and finds its latest step.

Dependencies point down: this package reads methods (to know the networks' shapes) and
never imports train/ or evaluation/.
"""
