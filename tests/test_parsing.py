import pytest

from napari_denoise._parsing import format_value, parse_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.5", 0.5), (" 2 ", 2.0), ("0.5, 0.26, 0.26", (0.5, 0.26, 0.26)), ("(1, 2)", (1.0, 2.0)),
     ("1 2 3", (1.0, 2.0, 3.0)), ("1; 2", (1.0, 2.0)), (0.5, 0.5), ((1, 2), (1.0, 2.0))],
)
def test_numbers_and_per_axis_lists(text, expected):
    assert parse_value(text, "sigma") == expected


def test_empty_means_auto_only_where_allowed():
    assert parse_value("", "h", allow_none=True) is None
    assert parse_value("auto", "h", allow_none=True) is None
    with pytest.raises(ValueError, match="sigma: a value is required"):
        parse_value("", "sigma")


@pytest.mark.parametrize("text", ["abc", "1,,2", "nan", "inf", "True", "[]"])
def test_garbage_names_the_parameter(text):
    with pytest.raises(ValueError, match="^sigma: "):
        parse_value(text, "sigma")


def test_integers():
    assert parse_value("3", "wavelet_levels", integer=True) == 3
    with pytest.raises(ValueError, match="wavelet_levels"):
        parse_value("2.5", "wavelet_levels", integer=True)


def test_format_value():
    assert format_value(None) == "auto"
    assert format_value(0.5) == "0.5"
    assert format_value((0.29, 0.26)) == "(0.29, 0.26)"
