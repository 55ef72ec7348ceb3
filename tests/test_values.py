"""Value coercion to HubSpot's string forms, and normalisation for comparing with HubSpot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncdsl.hubspot.schema import PropertyOption, PropertySchema
from syncdsl.records.values import CoercionError, coerce, normalize


def prop(type_: str, field_type: str, options: tuple[tuple[str, str], ...] = ()) -> PropertySchema:
    return PropertySchema(
        name="p",
        label="P",
        type=type_,
        field_type=field_type,
        options=tuple(PropertyOption(label, value) for label, value in options),
    )


NUMBER = prop("number", "number")
BOOL = prop("bool", "booleancheckbox")
DATE = prop("date", "date")
DATETIME = prop("datetime", "date")
STRING = prop("string", "text")
SELECT = prop("enumeration", "select", (("Gold", "gold"), ("Silver Tier", "silver")))
CHECKBOX = prop("enumeration", "checkbox", (("Red", "red"), ("Blue", "blue")))
BOOL_ENUM = prop("enumeration", "booleancheckbox", (("Yes", "true"), ("No", "false")))

JAN_5_2024 = 1_704_412_800_000  # 2024-01-05T00:00:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "42"),
        ("42", "42"),
        ("42.0", "42"),
        (42.0, "42"),
        (3.5, "3.5"),
        (" 3.50 ", "3.5"),
        ("-0.001", "-0.001"),
        ("1e3", "1000"),
        ("1000000", "1000000"),
        (0.1, "0.1"),
        ("-0", "0"),
        (10**20, "100000000000000000000"),
    ],
)
def test_numbers_become_canonical_decimals(value: object, expected: str) -> None:
    assert coerce(value, NUMBER) == expected


@pytest.mark.parametrize(
    "value",
    ["NaN", "inf", "-Infinity", float("nan"), float("inf"), "forty", "", "1,000", "1_000", True],
)
def test_non_numbers_are_refused(value: object) -> None:
    with pytest.raises(CoercionError, match="number"):
        coerce(value, NUMBER)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        ("TRUE", "true"),
        ("yes", "true"),
        ("No", "false"),
        ("1", "true"),
        ("0", "false"),
        (1, "true"),
        (0, "false"),
        (" false ", "false"),
    ],
)
def test_booleans(value: object, expected: str) -> None:
    assert coerce(value, BOOL) == expected


@pytest.mark.parametrize("value", ["maybe", "2", "", "y"])
def test_non_booleans_are_refused(value: object) -> None:
    with pytest.raises(CoercionError, match="expected true/false"):
        coerce(value, BOOL)


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-05",
        "2024-01-05T00:00:00Z",
        "2024-01-05T00:00:00+00:00",
        "2024-01-05T00:00:00",
        JAN_5_2024,
        str(JAN_5_2024),
        "2024-01-04T22:00:00-02:00",
    ],
)
def test_dates_become_midnight_utc_epoch_milliseconds(value: object) -> None:
    assert coerce(value, DATE) == str(JAN_5_2024)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-01-05T10:00:00Z", "a date must be midnight UTC"),
        (JAN_5_2024 + 1, "a date must be midnight UTC"),
        ("2024-02-30", "expected a date"),
        ("05/01/2024", "expected a date"),
        ("tomorrow", "expected a date"),
    ],
)
def test_bad_dates_are_refused(value: object, message: str) -> None:
    with pytest.raises(CoercionError, match=message):
        coerce(value, DATE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-05T10:00:00Z", JAN_5_2024 + 36_000_000),
        ("2024-01-05T10:00:00.123Z", JAN_5_2024 + 36_000_123),
        ("2024-01-05T12:00:00+02:00", JAN_5_2024 + 36_000_000),
        ("2024-01-05T10:00:00", JAN_5_2024 + 36_000_000),
        ("2024-01-05", JAN_5_2024),
        (JAN_5_2024 + 5, JAN_5_2024 + 5),
        (str(JAN_5_2024 + 5), JAN_5_2024 + 5),
        ("1969-12-31T23:59:59Z", -1000),
    ],
)
def test_datetimes_become_epoch_milliseconds(value: object, expected: int) -> None:
    assert coerce(value, DATETIME) == str(expected)


def test_bad_datetimes_are_refused() -> None:
    with pytest.raises(CoercionError, match="expected an ISO 8601 datetime"):
        coerce("next tuesday", DATETIME)


@pytest.mark.parametrize(
    ("prop_", "value", "expected"),
    [
        (SELECT, "gold", "gold"),
        (SELECT, "Gold", "gold"),
        (SELECT, "silver tier", "silver"),
        (SELECT, "SILVER", "silver"),
        (CHECKBOX, "red;Blue", "red;blue"),
        (CHECKBOX, ";red", ";red"),
        (BOOL_ENUM, True, "true"),
        (BOOL_ENUM, "no", "false"),
        (BOOL_ENUM, "0", "false"),
    ],
)
def test_enumerations_take_values_or_labels(
    prop_: PropertySchema, value: object, expected: str
) -> None:
    assert coerce(value, prop_) == expected


def test_unknown_options_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(
        CoercionError, match=r"'bronze' is not one of the options \('gold', 'silver'\)"
    ):
        coerce("bronze", SELECT)
    with pytest.raises(CoercionError, match="'green' is not one of the options"):
        coerce("red;green", CHECKBOX)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Ann", "Ann"), (" padded ", " padded "), (12, "12"), (1.5, "1.5"), (True, "true")],
)
def test_strings_are_kept_as_they_are(value: object, expected: str) -> None:
    assert coerce(value, STRING) == expected
    assert coerce(value, None) == expected


def test_strings_are_limited_to_65536_characters() -> None:
    assert coerce("x" * 65_536, None) == "x" * 65_536
    with pytest.raises(CoercionError, match="65,537 characters is longer than HubSpot's limit"):
        coerce("x" * 65_537, STRING)


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2]])
def test_structured_values_are_refused(value: object) -> None:
    with pytest.raises(CoercionError, match="expected a single value"):
        coerce(value, None)


@pytest.mark.parametrize(
    ("prop_", "left", "right"),
    [
        (NUMBER, "42.0", "42"),
        (NUMBER, "3.50", "3.5"),
        (DATE, "2024-01-05", str(JAN_5_2024)),
        (DATE, "2024-01-05T00:00:00Z", "2024-01-05"),
        (DATETIME, "2024-01-05T10:00:00.000Z", str(JAN_5_2024 + 36_000_000)),
        (DATETIME, "2024-01-05T12:00:00+02:00", "2024-01-05T10:00:00Z"),
        (BOOL, "True", "true"),
        (CHECKBOX, "blue;red", "red;blue"),
        (CHECKBOX, ";red;blue", "blue;red"),
    ],
)
def test_normalize_makes_equivalent_forms_equal(
    prop_: PropertySchema, left: str, right: str
) -> None:
    assert normalize(left, prop_) == normalize(right, prop_)


@pytest.mark.parametrize(
    ("prop_", "left", "right"),
    [
        (NUMBER, "42", "42.5"),
        (STRING, "Ann", "ann"),
        (STRING, "Ann", "Ann "),
        (BOOL, "true", "false"),
        (DATETIME, "2024-01-05T10:00:00Z", "2024-01-05T10:00:01Z"),
    ],
)
def test_normalize_keeps_different_values_different(
    prop_: PropertySchema, left: str, right: str
) -> None:
    assert normalize(left, prop_) != normalize(right, prop_)


@pytest.mark.parametrize("prop_", [None, STRING, NUMBER, DATE, DATETIME, BOOL, SELECT])
def test_normalize_maps_empty_to_none_and_never_raises(prop_: PropertySchema | None) -> None:
    assert normalize(None, prop_) is None
    assert normalize("", prop_) is None
    assert normalize("not a value of this type", prop_) == "not a value of this type"


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_a_coerced_datetime_normalizes_like_its_iso_form(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    iso = moment.isoformat().replace("+00:00", "Z")
    coerced = coerce(iso, DATETIME)
    assert normalize(coerced, DATETIME) == normalize(iso, DATETIME) == coerced
    assert int(coerced) == round(moment.timestamp() * 1000)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4))
def test_coerced_numbers_are_fixed_points_of_normalize(number: object) -> None:
    coerced = coerce(str(number), NUMBER)
    assert "e" not in coerced.lower()
    assert normalize(coerced, NUMBER) == coerced
