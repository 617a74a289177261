"""ASVspoof 2015 scored by equal error rate, as the ICME 2025 challenge table lists it (X-ARES 0.1.3 uses accuracy).

The IEEE ICME 2025 Audio Encoder Capability Challenge paper (Zhang et al., Table 1) scores ASV2015 by EER;
X-ARES 0.1.3's ``asvspoof_task.py`` scores it by accuracy (``asvspoof2015``). Same shards, labels (human 0,
spoof 1) and probe; the EER comes from the probe's scores (logit of spoof minus logit of human) on the
test set. Score = 1 − EER: the metric table's EER bounds (0, 1), the challenge's normalisation of EER.
No kNN track (the run's kNN track is accuracy, which ``asvspoof2015`` already reports). ``disabled``: run
by name, not by ``--suite all`` (it shares its test set with ``asvspoof2015``).
"""

import dataclasses

from xbench.tasks.asvspoof2015 import TASK as ACCURACY

TASK = dataclasses.replace(
    ACCURACY,
    name="asvspoof2015_eer",
    formal_name="ASV2015-EER",
    metric="EER",
    metric_bounds=None,  # the metric table's EER default, not the accuracy task's resolved bounds
    higher_is_better=None,
    do_knn=False,
    disabled=True,
    description="Detect spoofed (synthetic or converted) speech; equal error rate of the probe's spoof score.",
    citation=ACCURACY.citation + "; Zhang et al., IEEE ICME 2025 Audio Encoder Capability Challenge, Table 1 (EER)",
)
