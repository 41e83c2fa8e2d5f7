from datetime import timedelta

from django import template

from core.money import format_minor_units

register = template.Library()


@register.filter
def money(amount: int, currency: str) -> str:
    return format_minor_units(amount, currency)


@register.filter
def duration(value: timedelta | float | None) -> str:
    """A short human duration: 850 ms, 12.3 s, 4 min 05 s, 2 h 10 min, 3 d 4 h."""
    if value is None:
        return "–"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@register.filter
def percent(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.1f} %"
