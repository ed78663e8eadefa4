"""The drifting field and its losses: the one place where the method lives."""

from drifting_policy.drift.field import DEFAULT_TEMPERATURES, FieldResult, drift_field, drift_field_result
from drifting_policy.drift.loss import drift_loss, drift_loss_with_metrics, multi_feature_drift_loss

__all__ = [
    "DEFAULT_TEMPERATURES",
    "FieldResult",
    "drift_field",
    "drift_field_result",
    "drift_loss",
    "drift_loss_with_metrics",
    "multi_feature_drift_loss",
]
