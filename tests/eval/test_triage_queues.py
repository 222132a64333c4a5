"""Per-queue triage thresholds chosen on out-of-fold predictions (eval/triage_queues.py)."""

from eval.triage_queues import (
    GRID,
    Scored,
    calibrate,
    calibrate_hints,
    hinted,
    staff_share,
    with_hint_threshold,
    with_threshold,
)
from triage.classifier import Prediction
from triage.lexicon import LexiconHit
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


def _hinted(staff: bool, p_staff: float, phrase: str = "my bill") -> Scored:
    prediction = Prediction(p_staff, "billing", {"billing": p_staff}, "intent", p_staff, [])
    hit = LexiconHit("billing", phrase, "en", decisive=False)
    return Scored(staff, [], "a question", [hit], prediction)


def test_the_hint_threshold_is_the_highest_that_keeps_the_hinted_rows_recall() -> None:
    # hinted staff rows at 0.2 or more, hinted community rows at 0.12: 0.2 keeps every staff
    # row and sends none of the community ones; rows without a hint are not counted
    rows = [_hinted(True, 0.2 + 0.01 * i) for i in range(10)]
    rows += [_hinted(False, 0.12, "my account") for _ in range(5)]
    rows += [_row(True, 0.05, "billing"), _row(False, 0.9, "billing")]
    policy = with_hint_threshold(Policy(), 0.1)
    result = calibrate_hints(policy, rows)
    assert result["hint_threshold"] == 0.2
    assert result["recall"] == 1.0 and result["false_staff"] == 0.0
    assert result["false_staff_at_current"] == 1.0  # 0.12 >= 0.1: all five to staff
    assert result["staff_rows"] == 10 and result["community_rows"] == 5
    phrases = result["phrases"]
    assert isinstance(phrases, dict)
    # at 0.2 "my bill" alone catches the staff rows under 0.3 (0.20-0.29), "my account"
    # sends nobody
    assert phrases["en:my bill"]["catches"] == 10 and phrases["en:my bill"]["false_staff"] == 0
    assert phrases["en:my account"] == {
        "queue": "billing",
        "rows": 5,
        "staff_rows": 0,
        "catches": 0,
        "false_staff": 0,
    }


def test_a_decisive_phrase_takes_the_row_out_of_the_hints_calibration() -> None:
    decisive = LexiconHit("security", "stolen card", "en", decisive=True)
    row = _hinted(True, 0.05)
    both = Scored(True, [], "a question", [*row.hits, decisive], row.prediction)
    assert hinted([row, both]) == [row]
    # a hint threshold never rises above the classifier's: a hint only lowers it
    high = [_hinted(True, 0.95) for _ in range(4)]
    assert calibrate_hints(with_hint_threshold(Policy(), 0.1), high)["hint_threshold"] == 0.3
