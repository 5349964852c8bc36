"""Linked (URL) items: register them one by one or from a CSV text."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.api.context import Info
from graph.api.scalars import JSON
from graph.domain import links

__all__ = ["LinkInput", "LinkMutations", "LinkReport"]


@strawberry.input(description="A URL to register as an item.")
class LinkInput:
    url: str
    path: str | None = strawberry.field(
        default=None, description="Where the item goes; defaults to `/` + the URL's file name."
    )
    metadata: JSON | None = strawberry.field(default=None, description="`metadata.user`.")
    mimetype: str | None = strawberry.field(
        default=None, description="Guessed from the name when left out."
    )

    def spec(self) -> links.LinkSpec:
        return links.LinkSpec(
            url=self.url, path=self.path, metadata=self.metadata, mimetype=self.mimetype
        )


@strawberry.type(description="What a registration did: counts, and each link's item id in order.")
class LinkReport:
    created: int
    skipped: int
    overwritten: int
    item_ids: list[strawberry.ID]

    @classmethod
    def of(cls, report: links.LinkReport) -> LinkReport:
        return cls(
            created=report.created,
            skipped=report.skipped,
            overwritten=report.overwritten,
            item_ids=[strawberry.ID(i) for i in report.item_ids],
        )


@strawberry.type
class LinkMutations:
    @strawberry.mutation(
        description="Register URL items in one transaction; `mode` says what happens to a path "
        "that exists: `skip` (default) or `overwrite`."
    )
    async def add_links(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        links_: Annotated[list[LinkInput], strawberry.argument(name="links")],
        mode: str = "skip",
    ) -> LinkReport:
        ctx = info.context
        report = await links.add_links(
            ctx.platform, await ctx.actor(), dataset_id, [link.spec() for link in links_], mode
        )
        return LinkReport.of(report)

    @strawberry.mutation(
        description="Register URL items from CSV text: a header row with a `url` column, "
        "optional `path` (or `name`/`filename`), `mimetype` and `metadata` (a JSON object) "
        "columns; every other column becomes a user metadata key."
    )
    async def add_links_from_csv(
        self, info: Info, dataset_id: strawberry.ID, csv: str, mode: str = "skip"
    ) -> LinkReport:
        ctx = info.context
        actor = await ctx.actor()
        report = await links.add_links(
            ctx.platform, actor, dataset_id, links.links_from_csv(csv), mode
        )
        return LinkReport.of(report)
