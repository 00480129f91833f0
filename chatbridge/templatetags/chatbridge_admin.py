from django import template

from chatbridge.cache import stats

register = template.Library()


@register.inclusion_tag("admin/cache_stats.html")
def cache_stats() -> dict:
    return {"stats": stats.totals()}
