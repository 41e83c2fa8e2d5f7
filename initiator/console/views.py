"""The operator console: server-rendered pages for staff (Django login, CSRF on every form)."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console import audit, selectors
from console.forms import PaymentFilterForm, SettleForm
from core.errors import ApplicationError
from payments import operator
from payments.models import Payment, PaymentStatus

SETTLED_MESSAGES = {
    operator.SettleAction.CAPTURE: "Captured: the payment is {status} and its hold is captured.",
    operator.SettleAction.RELEASE: "Released: the payment is {status} and its hold is released.",
    operator.SettleAction.REFUND_AND_RELEASE: "Refunded and released: the payment is {status}, its hold released.",
}

PAGE_SIZE = 50


def console_permission(permission: str):
    """Anonymous visitors go to the login page; signed-in users who are not active staff holding
    `permission` (Django's model permissions, as the admin asks them) are refused (403)."""

    def decorate(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (request.user.is_active and request.user.is_staff and request.user.has_perm(permission)):
                raise PermissionDenied("The console page needs a permission this account lacks.")
            return view(request, *args, **kwargs)

        return guarded

    return decorate


can_view = console_permission("payments.view_payment")
can_settle = console_permission("payments.change_payment")


def _page(request, template: str, context: dict, status: int = 200):
    context["attention_count"] = selectors.needs_attention_queue().count()
    return render(request, template, context, status=status)


@can_view
def payment_list(request):
    form = PaymentFilterForm(request.GET or None)
    invalid = form.is_bound and not form.is_valid()
    if invalid:
        payments = Payment.objects.none()
    else:
        criteria = form.criteria() if form.is_bound else selectors.PaymentFilter()
        payments = selectors.payment_search(criteria=criteria)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": Paginator(payments, PAGE_SIZE).get_page(request.GET.get("page")),
        "query": query.urlencode(),
        "counts": selectors.status_counts(),
        "rates": selectors.rates_last_hour(),
    }
    return _page(request, "console/payments.html", context, status=400 if invalid else 200)


@can_view
def payment_detail(request, payment_id):
    payment = get_object_or_404(Payment.objects.select_related("user"), pk=payment_id)
    context = {
        "timeline": selectors.payment_timeline(payment=payment),
        "settle_form": SettleForm() if payment.status == PaymentStatus.NEEDS_ATTENTION else None,
    }
    return _page(request, "console/payment.html", context)


@can_view
def needs_attention(request):
    page = Paginator(selectors.needs_attention_queue(), PAGE_SIZE).get_page(request.GET.get("page"))
    return _page(
        request,
        "console/attention.html",
        {
            "page": page,
            "payments": page,
            "refund_failed": selectors.refund_failed_list(),
            "settle_form": SettleForm(),
        },
    )


@require_POST
@can_settle
def settle(request, payment_id):
    """Settle a needs_attention payment through payments.operator (the same service as `manage.py settle_payment`)."""
    form = SettleForm(request.POST)
    back = redirect("console:payment", payment_id=payment_id)
    if not form.is_valid():
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
        messages.error(request, f"Nothing settled: {problems}")
        return back
    action = operator.SettleAction(form.cleaned_data["action"])
    reason = form.cleaned_data["reason"]
    try:
        payment = operator.settle_payment(
            payment_id=payment_id, action=action, reason=reason, actor=request.user.get_username()
        )
    except ApplicationError as error:
        messages.error(request, f"Refused ({error.code}): {error.message}")
        audit.record_settle(request.user, payment_id, action=action, reason=reason, outcome=f"refused: {error.code}")
    else:
        messages.success(request, SETTLED_MESSAGES[action].format(status=payment.status))
        audit.record_settle(
            request.user, payment_id, action=action, reason=reason, outcome=f"settled: {payment.status}"
        )
    return back


@console_permission("payments.view_deadletter")
def dead_letters(request):
    page = Paginator(selectors.dead_letter_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    known = selectors.payments_by_id(letter.payment_id for letter in page)
    rows = [(letter, known.get(letter.payment_id)) for letter in page]
    return _page(request, "console/dead_letters.html", {"page": page, "rows": rows})


@can_view
def system(request):
    return _page(
        request, "console/system.html", {"system": selectors.system_status(), "recent_rows": selectors.RECENT_ROWS}
    )
