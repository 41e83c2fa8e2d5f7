from accounts.models import Deposit, User
from core.errors import invalid_parameter, not_found
from core.pagination import PageRequest


def user_get(*, user_id: int) -> User:
    user = User.objects.select_related("account").filter(pk=user_id).first()
    if user is None:
        raise not_found("user", user_id)
    return user


def user_list(*, page: PageRequest) -> tuple[list[User], bool]:
    """Newest first; starting_after is the id of the last user of the previous page."""
    users = User.objects.select_related("account").order_by("-id")
    if page.starting_after is not None:
        try:
            cursor = int(page.starting_after)
        except ValueError:
            raise invalid_parameter("starting_after", "starting_after must be a user id.") from None
        users = users.filter(pk__lt=cursor)
    rows = list(users[: page.limit + 1])
    return rows[: page.limit], len(rows) > page.limit


def deposit_list_for_user(*, user_id: int, page: PageRequest) -> tuple[list[Deposit], bool]:
    """Newest first; starting_after is the id of the last deposit of the previous page."""
    if not User.objects.filter(pk=user_id).exists():
        raise not_found("user", user_id)
    deposits = Deposit.objects.filter(user_id=user_id).order_by("-id")
    if page.starting_after is not None:
        try:
            cursor = int(page.starting_after)
        except ValueError:
            raise invalid_parameter("starting_after", "starting_after must be a deposit id.") from None
        deposits = deposits.filter(pk__lt=cursor)
    rows = list(deposits[: page.limit + 1])
    return rows[: page.limit], len(rows) > page.limit
