"""``xbench pretrain``: the recipe runner shared by the zoo's families.

* :mod:`.recipe`: recipes (the JSON files in ``recipes/``), ``--config`` merging, stages;
* :mod:`.stream`: seeded, resumable crops streamed from X-ARES shards, mixed over weighted sources;
* :mod:`.run`: stages with checkpoints, resume, logs and the encoder files (:func:`.run.pretrain`);
* :mod:`.checkpoint`: atomic checkpoint folders and the resume checks;
* :mod:`.progress`: ``log.csv`` and the loss curve;
* :mod:`.distributed`: torchrun's process group, DDP wrapping, batch norm over all ranks.

The optimisation loop itself is :mod:`xbench.encoders.training`; each family's objectives and its
``recipe`` module (its stages) live in ``<family>/pretrain/``.
"""
