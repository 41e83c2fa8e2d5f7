import logging

from django.conf import settings
from django.db import transaction

from accounts.models import Account, Deposit, User
from core.errors import not_found, unprocessable
from core.models import BIGINT_MAX, ApiKey
from core.money import format_minor_units, is_supported_currency

logger = logging.getLogger(__name__)

# accounts.balance is a bigint: no deposit may take it past this.
BALANCE_MAX = BIGINT_MAX


def require_supported_currency(currency: str, param: str = "currency") -> None:
    if not is_supported_currency(currency):
        raise unprocessable("currency_unsupported", f"Currency {currency} is not supported.", param)


@transaction.atomic
def user_create(
    *,
    email: str,
    name: str,
    currency: str,
    opening_balance: int = 0,
    default_payment_method: str | None = None,
    provider_customer: str | None = None,
) -> User:
    require_supported_currency(currency)
    user = User.objects.create(
        email=email, name=name, default_payment_method=default_payment_method, provider_customer=provider_customer
    )
    Account.objects.create(user=user, currency=currency, balance=opening_balance)
    logger.info("user %s created with a %s account", user.pk, currency)
    return user


@transaction.atomic
def user_set_payment_method(*, user_id: int, default_payment_method: str, provider_customer: str | None) -> User:
    """The provider objects the user's payments are charged to from now on (payments already made keep theirs)."""
    updated = User.objects.filter(pk=user_id).update(
        default_payment_method=default_payment_method, provider_customer=provider_customer
    )
    if not updated:
        raise not_found("user", user_id)
    logger.info("user %s pays with %s from now on", user_id, default_payment_method)
    return User.objects.get(pk=user_id)


@transaction.atomic
def deposit_create(*, user_id: int, amount: int, currency: str, created_by: ApiKey | None = None) -> Deposit:
    """Credit an account. Deposits mint money, so each records the API key that made it (None: an
    operator command) and is bounded by DEPOSIT_MAX_AMOUNTS[currency]."""
    require_supported_currency(currency)
    limit = settings.DEPOSIT_MAX_AMOUNTS[currency]
    if amount > limit:
        raise unprocessable(
            "amount_too_large", f"A deposit must be at most {format_minor_units(limit, currency)}.", "amount"
        )
    account = Account.objects.select_for_update().filter(user_id=user_id).first()
    if account is None:
        raise not_found("user", user_id)
    if currency != account.currency:
        raise unprocessable(
            "currency_mismatch", f"The account holds {account.currency}, not {currency}.", param="currency"
        )
    if account.balance > BALANCE_MAX - amount:
        raise unprocessable("balance_too_large", "This deposit would take the balance past its limit.", "amount")
    deposit = Deposit.objects.create(user_id=user_id, amount=amount, currency=currency, created_by=created_by)
    account.balance += amount
    account.save(update_fields=["balance", "updated_at"])
    logger.info("deposit %s of %s minor units credited to user %s", deposit.pk, amount, user_id)
    return deposit
