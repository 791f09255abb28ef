"""Budgets before SmartPush: each caller's rate, and windows mirroring SmartPush's own limits per
credential profile and per project (per minute, hour and day; overall and to any one user).

Counted in the state store, so every process and replica draws on one budget. SmartPush's limits
belong to the smartapp, shared by every caller of its credentials: these windows keep one noisy
caller from spending them for all, and refuse before SmartPush answers 1014/1018.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict

from smartpush.gateway.v1 import errors_pb2

from gateway.auth.callers import Caller
from gateway.clock import Clock
from gateway.config import QuotaSettings, WindowLimits
from gateway.errors import GatewayError, QuotaViolation
from gateway.quota_leases import LeaseBook
from gateway.state.limits import Limit, Refused
from gateway.state.store import StateStore

_WINDOWS = (("minute", 60.0), ("hour", 3600.0), ("day", 86400.0))


def _windows(scope: str, limits: WindowLimits, user: str | None = None) -> list[Limit]:
    """The overall windows of a scope, or (given a user's hash) its per-user ones."""
    out = []
    for name, seconds in _WINDOWS:
        if user is None:
            allowed, key = getattr(limits, f"per_{name}"), f"{scope}:{name}"
            subject, text = f"{scope}:per_{name}", f"{allowed} sends per {name}"
        else:
            allowed, key = getattr(limits, f"per_user_per_{name}"), f"{scope}:user:{user}:{name}"
            subject, text = f"{scope}:per_user_per_{name}", f"{allowed} sends per {name} to one user"
        if allowed:
            out.append(Limit(key, "window", allowed, seconds, subject, text))
    return out


_UserWindow = tuple[str, str, Limit]  # the key before and after the user's hash, and the rest


def _user_windows(scope: str, limits: WindowLimits) -> list[_UserWindow]:
    """A scope's per-user windows, built once: per send only the user's hash goes into each key."""
    out = []
    for limit in _windows(scope, limits, "\0"):  # a NUL marks the user's place: the key's last one
        head, _, tail = limit.key.rpartition("\0")
        out.append((head, tail, limit))
    return out


_CACHED = 1024  # (caller, profile, project) combinations whose fixed limits are kept built


class Quotas:
    def __init__(self, settings: QuotaSettings, store: StateStore, clock: Clock) -> None:
        self._settings = settings
        self._store = store
        # Lease refills under way, by limit key (bounded by the sends in flight).
        self._refills: dict[str, asyncio.Future[bool]] = {}
        self._leases = LeaseBook(settings.lease_share, settings.lease_s, clock) if settings.lease_share else None
        # The limits that do not depend on the user, built once per combination (bounded, oldest out).
        self._fixed: OrderedDict[tuple[str, str, str], tuple[list[Limit], list[_UserWindow]]] = OrderedDict()

    def _fixed_limits(self, caller: Caller, profile: str, project: str) -> tuple[list[Limit], list[_UserWindow]]:
        key = (caller.name, profile, project)
        found = self._fixed.get(key)
        if found is not None:
            self._fixed.move_to_end(key)
            return found
        fixed: list[Limit] = []
        rate = caller.grants.rate if caller.grants is not None else None
        if rate is not None:
            description = f"{rate.per_second:g} sends per second, burst {rate.burst}"
            fixed.append(
                Limit(
                    f"caller:{caller.name}", "rate", rate.per_second, rate.burst, f"caller:{caller.name}", description
                )
            )
        per_user: list[_UserWindow] = []
        profile_limits = self._settings.profiles.get(profile)
        project_limits = self._settings.projects.get(project) or self._settings.projects.get("*")
        for scope, limits in ((f"profile:{profile}", profile_limits), (f"project:{project}", project_limits)):
            if limits is not None:
                fixed += _windows(scope, limits)
                per_user += _user_windows(scope, limits)
        found = self._fixed[key] = (fixed, per_user)
        if len(self._fixed) > _CACHED:
            self._fixed.popitem(last=False)
        return found

    def limits(self, caller: Caller, profile: str, project: str, sub: str) -> list[Limit]:
        fixed, per_user = self._fixed_limits(caller, profile, project)
        if not per_user:
            return fixed  # no per-user window: no hashing on every send
        # The store sees a hash of the sub, never the sub.
        user = hashlib.sha256(f"{project}\0{sub}".encode()).hexdigest()[:32]
        return fixed + [
            Limit(head + user + tail, t.kind, t.limit, t.size, t.subject, t.description) for head, tail, t in per_user
        ]

    async def charge(self, caller: Caller, profile: str, project: str, sub: str) -> None:
        """Charge one send to every budget that applies, or refuse with which one and when to retry."""
        limits = self.limits(caller, profile, project, sub)
        if not limits:
            return
        book = self._leases
        if book is None:
            refused = await self._store.take(limits)
            if refused is not None:
                raise _refusal(refused)
            return
        lacking = book.lacking(limits)
        while lacking:
            refill = next((r for limit in lacking if (r := self._refills.get(limit.key)) is not None), None)
            if refill is None:
                counts = [book.size(limit) for limit in lacking]
                await (self._lease(book, lacking, counts) if max(counts) > 1 else self._exact(book, lacking))
            elif not await asyncio.shield(refill):  # (a send that leaves does not cancel the refill)
                await self._exact(book, lacking)  # no room for a lease: this send alone, exactly
            # Another send may have spent a unit this one counted on while the store answered.
            lacking = book.lacking(limits)
        book.spend(limits)

    async def _lease(self, book: LeaseBook, lacking: list[Limit], counts: list[int]) -> None:
        """Leases for `lacking`, one refill at a time: sends that lack the same limits meanwhile wait
        for this one's lease instead of each taking their own (near a budget's end those would be
        granted and stranded — more than a lease's worth lost per process)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        for limit in lacking:
            self._refills[limit.key] = done
        granted = False
        try:
            if await self._store.take(lacking, counts) is None:
                for limit, units in zip(lacking, counts, strict=True):
                    book.grant(limit, units)
                granted = True
        finally:
            for limit in lacking:
                if self._refills.get(limit.key) is done:
                    del self._refills[limit.key]
            done.set_result(granted)
        if not granted:
            await self._exact(book, lacking)  # no room for a lease: this send alone, exactly

    async def _exact(self, book: LeaseBook, lacking: list[Limit]) -> None:
        ones = [1] * len(lacking)
        refused = await self._store.take(lacking, ones)
        if refused is not None:
            raise _refusal(refused)
        for limit in lacking:
            book.grant(limit, 1)


def _refusal(refused: Refused) -> GatewayError:
    limit = refused.limit
    reason = (
        errors_pb2.ERROR_REASON_CALLER_RATE_LIMITED
        if limit.kind == "rate"
        else errors_pb2.ERROR_REASON_GATEWAY_QUOTA_EXCEEDED
    )
    return GatewayError(
        reason,
        f"quota {limit.subject} is spent ({limit.description}); nothing was sent",
        retry_after_s=refused.retry_after_s,
        quota_violations=(QuotaViolation(limit.subject, limit.description),),
        metadata={"quota": limit.subject},
    )
