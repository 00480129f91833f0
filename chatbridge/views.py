from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from chatbridge.cache import stats
from chatbridge.metrics import operators_only


@require_GET
@operators_only
def cache_stats(request: HttpRequest) -> JsonResponse:
    """Hits, misses and errors per key family, summed over every process. Counters only, like a
    metrics endpoint: no customer data."""
    return JsonResponse(stats.totals())
