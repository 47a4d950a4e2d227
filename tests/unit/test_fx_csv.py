"""Exchange-rate files: strict CSV parsing of generic and SARB/bank exports (``chatcore.money.fx_csv``),
line-numbered errors, exact decimals. Pure: no database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from chatcore.money import fx_csv
from tests.support.fx_files import SARB_EXPORT


def test_parse_rate_is_exact_and_strict():
    assert fx_csv.parse_rate("18.2345") == Decimal("18.2345")
    assert fx_csv.parse_rate(" 0.0000000001 ") == Decimal("1E-10")
    assert fx_csv.parse_rate("18,5", decimal_comma=True) == Decimal("18.5")
    assert str(fx_csv.parse_rate("18.10")) == "18.10"  # not through float
    for bad in ("", "abc", "-18.2", "0", "0.000", "1e3", "18,5", "1 234.5", "18.12345678901", "12345678901.5",
                "NaN", "Infinity", "+18.2", ".5", "18."):
        with pytest.raises(fx_csv.FxError):
            fx_csv.parse_rate(bad)
    with pytest.raises(fx_csv.FxError, match="decimal comma"):
        fx_csv.parse_rate("18.5", decimal_comma=True)


def test_generic_csv():
    rates = fx_csv.parse_generic("\ufeffdate,rate\n2026-11-20,18.2345\n2026-11-21,18.3\n\n")
    assert [(r.line, r.effective_date, r.rate) for r in rates] == [
        (2, date(2026, 11, 20), Decimal("18.2345")), (3, date(2026, 11, 21), Decimal("18.3"))]
    with_source = fx_csv.parse_generic("Date, Rate, Source\n2026-11-20,18.2345,SARB\n2026-11-21,18.3,\n")
    assert [r.source for r in with_source] == ["SARB", None]


def test_generic_csv_reports_every_bad_line_with_its_number():
    text = ("date,rate\n"
            "2026-11-20,18.2345\n"       # 2 ok
            "2026-02-30,18.1\n"          # 3 no such day
            "20/11/2026,18.1\n"          # 4 not ISO
            "2026-11-22,18,1\n"          # 5 three fields
            "\n"                         # 6 blank in the middle
            "2026-11-23,-1\n"            # 7 negative
            "2026-11-24,abc\n"           # 8 not a number
            "2026-11-20,18.2345\n"       # 9 duplicate of line 2
            "2026-11-25,18.123456789012\n")  # 10 too many decimals
    with pytest.raises(fx_csv.FxImportError) as info:
        fx_csv.parse_generic(text, "rates.csv")
    assert [line for line, _ in info.value.errors] == [3, 4, 5, 6, 7, 8, 9, 10]
    message = str(info.value)
    assert "rates.csv:3: date '2026-02-30' does not exist" in message
    assert "rates.csv:4: date '20/11/2026' is not YYYY-MM-DD" in message
    assert "rates.csv:5: expected 2 fields" in message
    assert "rates.csv:9: date 2026-11-20 already given on line 2" in message
    assert "rates.csv:10: rate '18.123456789012' has more than 10 decimals" in message


def test_sarb_export_with_title_lines_semicolons_and_decimal_commas():
    rates = fx_csv.parse_sarb(SARB_EXPORT, "sarb.csv")
    assert [(r.line, r.effective_date, r.rate) for r in rates] == [
        (6, date(2026, 11, 20), Decimal("18.2345")), (9, date(2026, 11, 23), Decimal("18.3012"))]


def test_sarb_and_bank_shapes():
    comma = '"Period","Value","Unit"\n"2026-11-20","18.2345","Rand"\n"2026-11-23","18.3",Rand\n'
    assert [r.rate for r in fx_csv.parse_sarb(comma)] == [Decimal("18.2345"), Decimal("18.3")]
    bank = "Currency export\tAs at 23 Nov 2026\nDate\tCurrency\tUSD/ZAR\n20 Nov 2026\tUSD\t18,2345\n2026/11/23\tUSD\tn/a\n"
    assert [(r.effective_date, r.rate) for r in fx_csv.parse_sarb(bank)] == [(date(2026, 11, 20), Decimal("18.2345"))]


def test_sarb_errors_are_line_numbered_and_strict():
    with pytest.raises(fx_csv.FxImportError) as info:
        fx_csv.parse_sarb("Title\nDate,Value\n2026-11-20,18.2\n11/20/2026,18.3\n2026-11-21,18,3\n2026-11-22,abc\n"
                      "2026-11-20,18.2\n", "x.csv")
    assert [line for line, _ in info.value.errors] == [4, 5, 6, 7]
    assert "x.csv:4: date '11/20/2026' does not exist" in str(info.value)  # DD/MM/YYYY: month 20
    assert "x.csv:5: expected 2 fields" in str(info.value)  # a decimal comma in a comma-separated file


@pytest.mark.parametrize("parse, text, name, message", [
    (fx_csv.parse_generic, "day,value\n2026-11-20,18.2\n", "rates.csv", "rates.csv:1: the header must be 'date,rate'"),
    (fx_csv.parse_generic, "\n\n", "rates.csv", "empty"),
    (fx_csv.parse_generic, "date,rate\n", "rates.csv", "no rates"),
    (fx_csv.parse_sarb, "Date,Value,Rate\n2026-11-20,18.2,18.3\n", "x.csv",
     "x.csv:1: the header needs exactly one date column"),
    (fx_csv.parse_sarb, "a,b\n1,2\n", "x.csv", "no header line"),
    (fx_csv.parse_sarb, "Date;Value\n2026-11-20;18.2\n", "x.csv", "use a decimal comma"),
    (fx_csv.parse_sarb, "Date;Value\n2026-11-21;\n", "x.csv", "no rates"),
])
def test_import_errors_say_what_is_wrong(parse, text, name, message):
    with pytest.raises(fx_csv.FxImportError, match=message):
        parse(text, name)
