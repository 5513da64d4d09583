"""Sample filter terms on LF votes: `lf_vote=<lf id>:<PRESENT|ABSENT|ABSTAIN>` and `lf_conflict=<class>` (the
class's active LFs disagree on the sample)."""

from django.db.models import Exists, OuterRef

from imagestudio.common.ids import parse_id
from imagestudio.datasets.filters import FilterError, FilterTerm, filter_term_register

from .models import LabelingFunction, LFVote

VOTE_WORDS = ("PRESENT", "ABSENT", "ABSTAIN")


def _resolve_vote(dataset, condition, classes):
    lf, _, word = condition.rpartition(":")
    lf_id = parse_id(lf)
    if lf_id is None or word.upper() not in VOTE_WORDS:
        raise FilterError(f"{condition!r} must read <lf id>:<{'|'.join(VOTE_WORDS)}>.")
    if not LabelingFunction.objects.filter(dataset=dataset, pk=lf_id).exists():
        raise FilterError(f"The dataset has no LF {lf_id}.")
    return lf_id, word.upper()


def _apply_vote(queryset, value):
    lf_id, word = value
    votes = LFVote.objects.filter(sample_id=OuterRef("pk"), lf_id=lf_id)
    if word == "ABSTAIN":
        return queryset.filter(~Exists(votes))
    return queryset.filter(Exists(votes.filter(vote=1 if word == "PRESENT" else -1)))


def _apply_conflict(queryset, class_id):
    votes = LFVote.objects.filter(sample_id=OuterRef("pk"), lf__label_class_id=class_id, lf__active=True)
    return queryset.filter(Exists(votes.filter(vote=1)), Exists(votes.filter(vote=-1)))


def register():
    filter_term_register(FilterTerm(key="lf_vote", resolve=_resolve_vote, apply=_apply_vote))
    filter_term_register(FilterTerm(key="lf_conflict", resolve=lambda dataset, ref, classes: classes(ref),
                                    apply=_apply_conflict))
