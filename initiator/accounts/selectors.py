"""Reads. `visible_to` is the user a user-bound API key acts for (None: a secret key sees every user);
a user it may not see answers exactly like a user that does not exist."""

from accounts.models import Deposit, User
from core.errors import not_found
from core.pagination import PageRequest, id_cursor


def user_get(*, user_id: int, visible_to: int | None = None) -> User:
    user = None
    if visible_to is None or user_id == visible_to:
        user = User.objects.select_related("account").filter(pk=user_id).first()
    if user is None:
        raise not_found("user", user_id)
    return user


def user_list(*, page: PageRequest, visible_to: int | None = None) -> tuple[list[User], bool]:
    """Newest first; starting_after is the id of the last user of the previous page."""
    users = User.objects.select_related("account").order_by("-id")
    if visible_to is not None:
        users = users.filter(pk=visible_to)
    cursor = id_cursor(page, "user")
    if cursor is not None:
        users = users.filter(pk__lt=cursor)
    rows = list(users[: page.limit + 1])
    return rows[: page.limit], len(rows) > page.limit


def deposit_list_for_user(
    *, user_id: int, page: PageRequest, visible_to: int | None = None
) -> tuple[list[Deposit], bool]:
    """Newest first; starting_after is the id of the last deposit of the previous page."""
    user_get(user_id=user_id, visible_to=visible_to)
    deposits = Deposit.objects.filter(user_id=user_id).order_by("-id")
    cursor = id_cursor(page, "deposit")
    if cursor is not None:
        deposits = deposits.filter(pk__lt=cursor)
    rows = list(deposits[: page.limit + 1])
    return rows[: page.limit], len(rows) > page.limit
