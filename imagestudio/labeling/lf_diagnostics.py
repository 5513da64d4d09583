"""What an EM fit learned about each LF, next to what the dev labels say of it: the conditionals, the precisions they
imply, the dev precision and recall of its PRESENT and ABSENT votes with Wilson intervals, and a `check` where the
two disagree ("the model does not believe this LF"). Pure numpy, no Django."""

import numpy as np

from imagestudio.common.votes import ABSENT, ABSTAIN, PRESENT
from imagestudio.labeling import metrics


def lf_diagnostics(model, votes, truth, learned_by, cast):
    """votes, truth: the dev rows'. Per LF: the model's conditionals and the precisions they imply, next to the
    dev precision and recall of its PRESENT and ABSENT votes (Wilson 95 % intervals); `check` names the sides
    whose implied precision lies outside the dev interval: the model does not believe the labels about this LF.
    learned_by: the candidate name of `model`, which need not be the one whose labels were chosen. cast: (2, m)
    bool, whether each LF votes ABSENT (row 0) and PRESENT (row 1) on any row: a side it never votes implies no
    precision (null; the smoothing prior's value described nothing).

    Dev labels of one class only check nothing: a vote's dev precision is then 1 or 0 whatever the LF is worth (every
    good LF was flagged)."""
    theta, prior = model.theta, model.prior
    group_of = {j: members for members in model.groups for j in members}
    labeled = np.asarray(truth)[np.asarray(truth) != ABSTAIN]
    both_classes = (labeled == PRESENT).any() and (labeled == ABSENT).any()
    rows = []
    for j in range(theta.shape[1]):
        absent, present = theta[0, j], theta[1, j]
        implied = {"present": prior * present[1] / max(prior * present[1] + (1 - prior) * absent[1], 1e-300)
                   if cast[1][j] else None,
                   "absent": (1 - prior) * absent[0] / max((1 - prior) * absent[0] + prior * present[0], 1e-300)
                   if cast[0][j] else None}
        quality = metrics.vote_quality(votes[:, j], truth)
        check = []
        for side in ("present", "absent"):
            interval = quality[side]["precision"]["interval"]
            if both_classes and interval is not None and implied[side] is not None \
                    and not interval[0] <= implied[side] <= interval[1]:
                check.append(side)
        rows.append({
            "lf": j,
            "learned_by": learned_by,
            "learned": {"p_present_given_present": float(present[1]), "p_absent_given_present": float(present[0]),
                        "p_abstain_given_present": float(present[2]), "p_present_given_absent": float(absent[1]),
                        "p_absent_given_absent": float(absent[0]), "p_abstain_given_absent": float(absent[2])},
            "implied_precision": {side: None if value is None else float(value) for side, value in implied.items()},
            "dev": {side: quality[side] for side in ("present", "absent")},
            "dependence_group": group_of.get(j, [j]),
            "weight": float(model.weights[j]),
            "check": check,
            "message": ("the model does not believe this LF: check it (implied precision outside the dev "
                        f"interval for its {' and '.join(check)} votes)") if check else None,
        })
    return rows
