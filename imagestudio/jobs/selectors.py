from django.db.models import Q

from .models import Job


def job_list_visible(*, user):
    """Jobs a user may see: those they created and those of datasets they are a member of."""
    if user.is_superuser:
        return Job.objects.all()
    from imagestudio.datasets.models import DatasetMembership

    member_of = DatasetMembership.objects.filter(user=user).values("dataset_id")
    return Job.objects.filter(Q(creator=user) | Q(dataset_id__in=member_of))
