from django.test import SimpleTestCase

from core.money import AmountError, to_minor_units


class MinorUnitTests(SimpleTestCase):
    def test_conversions_use_the_currency_exponent(self) -> None:
        cases = [
            ("100.00", "USD", 10_000),
            ("100", "USD", 10_000),
            ("0.01", "USD", 1),
            ("500", "JPY", 500),
            ("1.234", "KWD", 1_234),
            ("19.9", "EUR", 1_990),
        ]
        for amount, currency, expected in cases:
            with self.subTest(amount=amount, currency=currency):
                self.assertEqual(to_minor_units(amount, currency), expected)

    def test_refusals(self) -> None:
        for amount, currency in [
            ("0", "USD"),
            ("-1", "USD"),
            ("1.001", "USD"),
            ("1.5", "JPY"),
            ("abc", "USD"),
            ("1e2", "USD"),
            ("Infinity", "USD"),
            ("", "USD"),
        ]:
            with self.subTest(amount=amount, currency=currency), self.assertRaises(AmountError):
                to_minor_units(amount, currency)
