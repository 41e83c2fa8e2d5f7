import logging

from django.db import transaction

from accounts.models import Account, Deposit, User
from core.errors import not_found, unprocessable
from core.money import is_supported_currency

logger = logging.getLogger(__name__)


def require_supported_currency(currency: str, param: str = "currency") -> None:
    if not is_supported_currency(currency):
        raise unprocessable("currency_unsupported", f"Currency {currency} is not supported.", param)


@transaction.atomic
def user_create(*, email: str, name: str, currency: str, opening_balance: int = 0) -> User:
    require_supported_currency(currency)
    user = User.objects.create(email=email, name=name)
    Account.objects.create(user=user, currency=currency, balance=opening_balance)
    logger.info("user %s created with a %s account", user.pk, currency)
    return user


@transaction.atomic
def deposit_create(*, user_id: int, amount: int, currency: str) -> Deposit:
    account = Account.objects.select_for_update().filter(user_id=user_id).first()
    if account is None:
        raise not_found("user", user_id)
    if currency != account.currency:
        raise unprocessable(
            "currency_mismatch", f"The account holds {account.currency}, not {currency}.", param="currency"
        )
    deposit = Deposit.objects.create(user_id=user_id, amount=amount, currency=currency)
    account.balance += amount
    account.save(update_fields=["balance", "updated_at"])
    logger.info("deposit %s of %s minor units credited to user %s", deposit.pk, amount, user_id)
    return deposit
