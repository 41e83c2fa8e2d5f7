from accounts.models import User
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
