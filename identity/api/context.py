"""Per-request context: who is calling, fresh DataLoaders, and the shared resources.

One DataLoader per relationship (strawberry's pattern): every per-item lookup of a request
goes through one, so that a page of 50 profiles asking for their identifiers costs one query
for all 50. Loaders are built fresh per request: nothing is cached across requests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from strawberry.dataloader import DataLoader

from identity.api.auth import Permission, Principal
from identity.api.errors import ApiError
from identity.api.traits import ProfileView
from identity.config import Settings
from identity.context import ServiceContext
from identity.normalize import Normalizer
from identity.policy import Policy
from identity.store import reads
from identity.store.driver import AsyncGraph, Graph
from identity.store.read_types import EventRow, IdentifierRow, IdentityRow, Page

V = TypeVar("V")

# A page request: (args shared by the batch, item id). Items with the same args go in one query.
PageKey = tuple[tuple[Any, ...], str]


def _loader(
    fetch: Callable[[Sequence[str]], Awaitable[dict[str, V]]],
) -> DataLoader[str, V | None]:
    async def load(keys: list[str]) -> list[V | None]:
        found = await fetch(keys)
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load)


def _paged_loader(
    fetch: Callable[[Sequence[str], tuple[Any, ...]], Awaitable[dict[str, V]]],
) -> DataLoader[PageKey, V | None]:
    async def load(keys: list[PageKey]) -> list[V | None]:
        by_args: dict[tuple[Any, ...], list[str]] = defaultdict(list)
        for args, item in keys:
            by_args[args].append(item)
        found: dict[PageKey, V] = {}
        for args, items in by_args.items():
            for item, value in (await fetch(items, args)).items():
                found[(args, item)] = value
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    identity_by_key: DataLoader[str, IdentityRow | None]
    identity_by_id: DataLoader[str, IdentityRow | None]
    identifier: DataLoader[str, IdentifierRow | None]
    members: DataLoader[PageKey, Page | None]
    profile_by_key: DataLoader[PageKey, tuple[IdentityRow, Page] | None]
    attributes: DataLoader[str, list[list[Any]] | None]
    profile: DataLoader[str, ProfileView | None]
    history: DataLoader[PageKey, list[EventRow] | None]
    links: DataLoader[PageKey, Page | None]

    @classmethod
    def fresh(cls, store: AsyncGraph) -> Loaders:
        async def members(ids: Sequence[str], args: tuple[Any, ...]) -> dict[str, Any]:
            types, after, limit = args
            return await reads.members_pages(store, ids, types, after, limit)

        async def profiles(keys: Sequence[str], args: tuple[Any, ...]) -> dict[str, Any]:
            types, after, limit = args
            return await reads.profiles_by_key(store, keys, types, after, limit)

        async def views(ids: Sequence[str]) -> dict[str, ProfileView]:
            found = await reads.profiles(store, ids)
            return {id_: ProfileView.of(props) for id_, props in found.items()}

        async def history(ids: Sequence[str], args: tuple[Any, ...]) -> dict[str, Any]:
            after, limit = args
            return await reads.history_pages(store, ids, after, limit)

        async def links(keys: Sequence[str], args: tuple[Any, ...]) -> dict[str, Any]:
            after, limit = args
            return await reads.links_pages(store, keys, after, limit)

        return cls(
            identity_by_key=_loader(lambda keys: reads.identities_by_key(store, keys)),
            identity_by_id=_loader(lambda ids: reads.identities_by_id(store, ids)),
            identifier=_loader(lambda keys: reads.identifiers_by_key(store, keys)),
            members=_paged_loader(members),
            profile_by_key=_paged_loader(profiles),
            attributes=_loader(lambda ids: reads.attributes(store, ids)),
            profile=_loader(views),
            history=_paged_loader(history),
            links=_paged_loader(links),
        )


@dataclass
class Context:
    """What every resolver gets as ``info.context``."""

    request: Request
    principal: Principal | None
    services: ServiceContext  # the app's, for no one in particular: see acting()
    reads: AsyncGraph
    loaders: Loaders
    connection_params: dict[str, Any] | None = None  # a WebSocket's connection_init payload

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def policy(self) -> Policy:
        return self.services.policy

    @property
    def normalizer(self) -> Normalizer:
        return self.services.normalizer

    @property
    def graph(self) -> Graph:
        return self.services.graph

    def acting(self, permission: Permission) -> ServiceContext:
        """The services on the caller's behalf (recorded as the key's name), once the caller
        is allowed ``permission``."""
        return self.services.acting_as(self.require(permission).name)

    def require(self, permission: Permission) -> Principal:
        """The caller, if allowed ``permission``; else UNAUTHENTICATED or FORBIDDEN."""
        if self.principal is None:
            raise ApiError(
                "UNAUTHENTICATED",
                "no API key: send Authorization: Bearer KEY with a key from IDGRAPH_API_KEYS",
            )
        if not self.principal.may(permission):
            raise ApiError(
                "FORBIDDEN",
                f"key {self.principal.name!r} has role {self.principal.role}, "
                f"which may not do this (needs {permission} access)",
            )
        return self.principal

    def page_size(self, first: int) -> int:
        limit = self.settings.api_max_page
        if first < 0 or first > limit:
            raise ApiError("BAD_USER_INPUT", f"first must be between 0 and {limit}, got {first}")
        return first
