"""Events of the datasets domain that downstream domains act on, inside the sender's transaction. Django
signals: the sender never imports its receivers, so the dependency stays one-way."""

from django.dispatch import Signal

# sample, old_split, new_split: a sample moved between splits (counters per split follow it).
sample_split_changed = Signal()

# dataset, user, rows: ground truth arriving with newly imported samples, as (sample_id, split, label_class,
# value) tuples. A receiver returns how many labels it stored.
ground_truth_imported = Signal()

# dataset, sample_ids: the ground truth stored samples hold, for comparing an imported duplicate with its twin.
# A receiver returns {sample_id: {class name: PRESENT / ABSENT / ABSTAIN}} (ABSTAIN: a cleared label).
ground_truth_requested = Signal()

# label_class, old_name: a class renamed. Figures stored under the class's name follow it.
label_class_renamed = Signal()
