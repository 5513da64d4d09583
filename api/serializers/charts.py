from rest_framework import serializers

from api.fields import AsciiIntegerField, StrictCharField
from api.serializers.labeling import HistogramSerializer
from imagestudio.datasets.models import Split
from imagestudio.labeling.services import MAX_BINS

MAX_CURVE_POINTS = 1001
MAX_CALIBRATION_BINS = 100


class ModelChartsQuerySerializer(serializers.Serializer):
    label_class = StrictCharField(max_length=120, required=False,
                                        help_text="Class name or id (default: every class the model was trained for).")
    split = serializers.ChoiceField(choices=Split.choices, required=False, default=Split.VALID)
    points = AsciiIntegerField(required=False, default=101, min_value=3, max_value=MAX_CURVE_POINTS,
                                      help_text="At most this many curve points per class.")
    bins = AsciiIntegerField(required=False, default=40, min_value=1, max_value=MAX_BINS,
                                    help_text="Score histogram bins.")
    calibration_bins = AsciiIntegerField(required=False, default=10, min_value=1,
                                                max_value=MAX_CALIBRATION_BINS,
                                                help_text="Equal-width probability bins of [0, 1].")


class CurveSerializer(serializers.Serializer):
    """The rule score >= threshold at each kept point (item k of every array), thresholds descending. Points: the
    highest threshold, then for k = 1..K (K = (points - 1) // 2) the first threshold reaching k/K of the positives
    (even recall steps) and the first reaching k/K of the negatives (even false-positive-rate steps); each is an
    exact point of the full curve. PR: plot (recall, precision); ROC: (fpr, recall) from (0, 0)."""

    thresholds = serializers.ListField(child=serializers.FloatField(), help_text="Decision-function scores.")
    tp = serializers.ListField(child=AsciiIntegerField(), help_text="Positives scoring >= the threshold.")
    fp = serializers.ListField(child=AsciiIntegerField(), help_text="Negatives scoring >= the threshold.")
    precision = serializers.ListField(child=serializers.FloatField(), help_text="tp / (tp + fp).")
    recall = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                   help_text="tp / positives (the true-positive rate); null without positives.")
    fpr = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                help_text="fp / negatives; null without negatives.")


class ConfusionSerializer(serializers.Serializer):
    tp = AsciiIntegerField()
    fp = AsciiIntegerField()
    fn = AsciiIntegerField()
    tn = AsciiIntegerField()


class CalibrationBinSerializer(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()
    count = AsciiIntegerField(help_text="Labeled samples whose probability falls in [low, high).")
    mean_predicted = serializers.FloatField(allow_null=True, help_text="Their mean probability; null when empty.")
    observed = serializers.FloatField(allow_null=True, help_text="Their fraction with ground truth PRESENT.")


class CalibrationSerializer(serializers.Serializer):
    ece = serializers.FloatField(allow_null=True, help_text="Expected calibration error (count-weighted mean gap).")
    count = AsciiIntegerField()
    bins = CalibrationBinSerializer(many=True)


class ClassChartsSerializer(serializers.Serializer):
    label_class = StrictCharField()
    class_id = AsciiIntegerField()
    labeled = AsciiIntegerField(help_text="Scored samples of the split with ground truth for the class.")
    positives = AsciiIntegerField(help_text="Of those, PRESENT.")
    negatives = AsciiIntegerField(help_text="Of those, ABSENT.")
    reason = StrictCharField(required=False, help_text="Why the curves are empty (no ground truth).")
    learned = AsciiIntegerField(help_text="Scored samples of the split left out: the model learned the class from "
                                          "them in another split, and they moved here since (their scores are "
                                          "in-sample).")
    curve = CurveSerializer()
    pr_auc = serializers.FloatField(allow_null=True, help_text="Average precision over the full curve.")
    roc_auc = serializers.FloatField(allow_null=True, help_text="Area under the full ROC curve.")
    confusion = ConfusionSerializer(help_text="At the model's threshold, on the labeled samples.")
    histogram = HistogramSerializer(help_text="Decision-function scores of every scored sample of the split.")
    calibration = CalibrationSerializer(help_text="Probability (sigmoid of the score) against the observed fraction.")


class ModelChartsSerializer(serializers.Serializer):
    model = AsciiIntegerField()
    version = AsciiIntegerField()
    split = serializers.ChoiceField(choices=Split.choices)
    threshold = serializers.FloatField(help_text="The decision-function score from which the model says PRESENT.")
    scored = AsciiIntegerField(help_text="Samples of the split the model scored.")
    unscored = AsciiIntegerField(help_text="Samples of the split it did not (no vectors when it trained).")
    classes = ClassChartsSerializer(many=True)
