from datetime import timedelta

from django import forms
from django.conf import settings

from console.selectors import PaymentFilter
from core.models import BIGINT_MAX
from core.money import AmountError, is_supported_currency, to_minor_units
from payments.models import PaymentStatus
from payments.operator import SettleAction

SETTLE_CHOICES = [
    (SettleAction.CAPTURE.value, "Capture the hold (a charge stands)"),
    (SettleAction.RELEASE.value, "Release the hold (no charge can land)"),
    (SettleAction.REFUND_AND_RELEASE.value, "Refund the charge and release the hold"),
]


def _minutes(value: int | None) -> timedelta | None:
    return timedelta(minutes=value) if value is not None else None


# Ten years: any older payment is "older than" this; a larger value cannot become a date (it was a 500).
MAX_AGE_MINUTES = 10 * 366 * 24 * 60


class PaymentFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "any status"), *PaymentStatus.choices], required=False)
    user = forms.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False, label="User id")
    older_than_minutes = forms.IntegerField(
        min_value=0, max_value=MAX_AGE_MINUTES, required=False, label="Older than (min)"
    )
    newer_than_minutes = forms.IntegerField(
        min_value=0, max_value=MAX_AGE_MINUTES, required=False, label="Newer than (min)"
    )
    currency = forms.CharField(max_length=3, required=False)
    amount_min = forms.CharField(required=False, label="Amount from")
    amount_max = forms.CharField(required=False, label="Amount to")

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        if currency and not is_supported_currency(currency):
            raise forms.ValidationError(f"{currency} is not a supported currency.")
        return currency

    def clean(self) -> dict:
        data = super().clean()
        # Amounts are typed as decimals in the filter's currency (else the default) and compared in minor units.
        currency = data.get("currency") or settings.DEFAULT_CURRENCY
        for name in ("amount_min", "amount_max"):
            raw = (data.get(name) or "").strip()
            data[f"{name}_minor"] = None
            if raw:
                try:
                    data[f"{name}_minor"] = to_minor_units(raw, currency)
                except AmountError as error:
                    self.add_error(name, str(error))
        return data

    def criteria(self) -> PaymentFilter:
        """The filter a valid form describes."""
        data = self.cleaned_data
        return PaymentFilter(
            status=data.get("status") or None,
            user_id=data.get("user"),
            older_than=_minutes(data.get("older_than_minutes")),
            newer_than=_minutes(data.get("newer_than_minutes")),
            currency=data.get("currency") or None,
            amount_min=data.get("amount_min_minor"),
            amount_max=data.get("amount_max_minor"),
        )


class SettleForm(forms.Form):
    action = forms.ChoiceField(choices=SETTLE_CHOICES)
    reason = forms.CharField(max_length=500, help_text="Recorded with the settlement and in the saga log.")
