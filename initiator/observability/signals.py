"""Count what the initiator does as the rows that record it are committed (observability.metrics).

A row saved in a transaction that rolls back is not counted: each receiver defers to on_commit.
A payment's status is counted when a save names it (the settlement services save `status` by name).
"""

from django.db import transaction
from django.db.models.signals import post_save

from observability import metrics
from payments.models import DeadLetter, Payment, ReconcilerPass


def _payment_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    if created or (update_fields and "status" in update_fields):
        transaction.on_commit(lambda: metrics.payment_saved(instance, created=created))


def _dead_letter_saved(sender, instance, created, **kwargs) -> None:
    if created:
        transaction.on_commit(lambda: metrics.dead_letter_received(instance))


def _reconciler_pass_saved(sender, instance, created, **kwargs) -> None:
    if created:
        transaction.on_commit(lambda: metrics.reconciler_pass_recorded(instance))


def connect() -> None:
    post_save.connect(_payment_saved, sender=Payment, dispatch_uid="metrics-payment")
    post_save.connect(_dead_letter_saved, sender=DeadLetter, dispatch_uid="metrics-dead-letter")
    post_save.connect(_reconciler_pass_saved, sender=ReconcilerPass, dispatch_uid="metrics-reconciler-pass")
