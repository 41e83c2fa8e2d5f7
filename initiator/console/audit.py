"""Every settle attempt in the console, refused ones included, in Django's admin log (LogEntry): who,
what, why and how it ended, shown in the payment's admin history. A settlement that happened is also an
OperatorAction row and saga-log steps (payments/operator.py)."""

from django.contrib.admin.models import CHANGE, LogEntry

from payments.models import Payment


def record_settle(user, payment_id, *, action: str, reason: str, outcome: str) -> None:
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None:
        return
    LogEntry.objects.log_actions(
        user_id=user.pk,
        queryset=[payment],
        action_flag=CHANGE,
        change_message=f"console settle {action} ({outcome}); reason: {reason}",
        single_object=True,
    )
