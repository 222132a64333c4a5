"""Per-queue triage thresholds chosen on out-of-fold predictions (eval/triage_queues.py)."""

from eval.triage_queues import GRID, Scored, calibrate, staff_share, with_threshold
from triage.classifier import Prediction
from triage.policy import Policy


def _row(staff: bool, p_staff: float, queue: str) -> Scored:
    prediction = Prediction(p_staff, queue, {queue: p_staff}, "intent", p_staff, [])
    return Scored(staff, [], "a question", [], prediction)


def test_a_well_separated_queue_gets_the_highest_threshold_that_keeps_its_recall() -> None:
    # billing: staff rows all at 0.7 or more, community rows at 0.35-0.5 -> raise to 0.7
    billing = [_row(True, 0.7 + 0.01 * i, "billing") for i in range(20)]
    billing += [_row(False, 0.35 + 0.01 * i, "billing") for i in range(16)]
    # account: one staff row sits at 0.32 -> the global 0.3 must stay
    account = [_row(True, 0.32, "account")] + [_row(True, 0.9, "account") for _ in range(9)]
    account += [_row(False, 0.31, "account")]
    policy = Policy()
    assert policy.classifier.threshold == 0.3
    result = calibrate(policy, billing + account)
    assert result["billing"]["threshold"] == 0.7 and 0.7 in GRID
    assert result["billing"]["recall"] == 1.0 and result["billing"]["false_staff"] == 0.0
    assert result["billing"]["global_false_staff"] == 1.0  # every community row at 0.3
    assert result["account"]["threshold"] == 0.3 and result["account"]["recall"] == 1.0


def test_a_queue_threshold_changes_only_that_queue() -> None:
    policy = with_threshold(Policy(), "billing", 0.8)
    assert staff_share(policy, [_row(True, 0.5, "billing")]) == 0.0
    assert staff_share(policy, [_row(True, 0.5, "account")]) == 1.0
    assert Policy().classifier.queue_thresholds == {}  # the base policy is not changed
