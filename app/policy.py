"""Per-route policy, declared on the views that need it (never matched on path strings).

- `public`: the view answers without an API key (health probes, the viewer's page).
- `runs_forecasts`: the view runs forecasts: the time budget applies (a request that already
  waited it out in a queue is refused with 503 before any work), and the view body runs holding an
  in-flight slot, taken after flask-smorest has read and validated the body, so a slow or invalid
  upload never holds one (429 when none is free). Once it has answered, the WSGI environ says so
  (`RAN_FORECASTS`), for gunicorn's `post_request` (gunicorn.conf.py).

Hooks ask `policy_of(view)` what applies; the decorators only mark the view, and
`runs_forecasts` also wraps it to hold the slot.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import current_app, request

View = TypeVar("View", bound=Callable[..., Any])
_ATTRIBUTE = "_kronos_policy"
RAN_FORECASTS = "kronos.ran_forecasts"
"""WSGI environ key, True once a `runs_forecasts` view has returned its answer."""


@dataclass(frozen=True)
class Policy:
    """What applies to a view: an API key (unless public), the budget and slot (forecasts)."""

    public: bool = False
    runs_forecasts: bool = False


def _mark(view: View, **changes: bool) -> View:
    previous: Policy = getattr(view, _ATTRIBUTE, Policy())
    setattr(view, _ATTRIBUTE, Policy(**{**vars(previous), **changes}))
    return view


def public(view: View) -> View:
    """The view needs no API key."""
    return _mark(view, public=True)


def runs_forecasts(view: View) -> View:
    """The view runs forecasts: time budget, and an in-flight slot while its body runs."""
    from app.backpressure import hold_inflight_slot

    @functools.wraps(view)
    def holding_a_slot(*args: Any, **kwargs: Any) -> Any:
        with hold_inflight_slot():
            answer = view(*args, **kwargs)
        request.environ[RAN_FORECASTS] = True
        return answer

    return _mark(cast(View, holding_a_slot), runs_forecasts=True)


def policy_of_request() -> Policy:
    """The policy of the view this request is routed to (the default for unrouted requests:
    not public, no forecasts)."""
    view = current_app.view_functions.get(request.endpoint or "")
    policy: Policy = getattr(view, _ATTRIBUTE, Policy())
    return policy
