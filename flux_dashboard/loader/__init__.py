"""Load every flux row of a sensor for ``[start, end)`` exactly once.

The contract: for one sensor, a set of server-side filters and a half-open
range on ``start_of_hour``, return every row exactly once, or raise
``IncompleteDataError`` naming the hours that could not be completed.

Why not just page through? The API pages with LIMIT/OFFSET over a sort key
that is never unique, and rows that tie come back in a different order on
each request, so offset pages return some rows twice and others never. What
*is* stable is which key occupies which position: a group of rows sharing a
key that lies wholly inside one page is whole in that page, whatever the order
of ties (``positions``). The loader builds on that and never trusts tie order.

A load, in the order it runs (each module opens with the details):

- ``core``: ``Loader.load`` answers from memory or waits for the same load
  running elsewhere; takes the locks of the sensor-days it may fetch, shared
  by replicas through Redis; reads the settled hours from the disk cache.
- ``recheck``: re-counts recent cached hours for late uploads, refetching the
  hours whose count changed.
- ``segments``: fetches the missing hours as contiguous segments: a first
  request each, then planned windows and keyset chunks in parallel; each
  settled segment must add up to the total its first request announced.
- ``fetch``: the requests of one load: keyset windows of hours, dense hours
  split on a second key, windows sorted by sumFlux, hourly counts; every page
  is verified, and accepted hours go to the cache as they complete.
- ``positions``: what offset pages prove whole although tie order is unstable.
- ``gate``: every attempt passes the load's cancel event and request allowance.
- ``estimate`` and ``cost``: what a load would cost before it starts, from a
  few counts and the cost model of the requests above.
- ``results``: what a load returns, reports and says when it stops.

Figures (requests per load, estimate accuracy) are in the README's benchmarks.
"""

from flux_dashboard.loader.core import Loader
from flux_dashboard.loader.results import Estimate, LoadResult, Progress, ProgressFn

__all__ = ["Estimate", "LoadResult", "Loader", "Progress", "ProgressFn"]
