"""Reads. `visible_to` is the user a user-bound API key acts for (None: a secret key); another user's
payment answers exactly like one that does not exist."""

import uuid

from django.db.models import Q

from accounts.selectors import user_get
from core.errors import invalid_parameter, not_found
from core.pagination import PageRequest
from payments.models import Payment


def _parse_payment_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


def payment_get(*, payment_id: str, visible_to: int | None = None) -> Payment:
    parsed = _parse_payment_id(payment_id)
    payments = Payment.objects.filter(pk=parsed)
    if visible_to is not None:
        payments = payments.filter(user_id=visible_to)
    payment = payments.first() if parsed else None
    if payment is None:
        raise not_found("payment", payment_id)
    return payment


def payment_list_for_user(
    *, user_id: int, page: PageRequest, visible_to: int | None = None
) -> tuple[list[Payment], bool]:
    """Newest first; starting_after is the id of the last payment of the previous page."""
    user_get(user_id=user_id, visible_to=visible_to)
    payments = Payment.objects.filter(user_id=user_id).order_by("-created_at", "-id")
    if page.starting_after is not None:
        cursor_id = _parse_payment_id(page.starting_after)
        if cursor_id is None:
            raise invalid_parameter("starting_after", "starting_after must be the id of one of this user's payments.")
        cursor = Payment.objects.filter(pk=cursor_id, user_id=user_id).first()
        if cursor is None:
            raise not_found("payment", page.starting_after, param="starting_after")
        payments = payments.filter(
            Q(created_at__lt=cursor.created_at) | Q(created_at=cursor.created_at, id__lt=cursor.pk)
        )
    rows = list(payments[: page.limit + 1])
    return rows[: page.limit], len(rows) > page.limit
