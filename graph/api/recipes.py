"""Recipes: an ontology, instructions and custom statuses; a dataset's recipe checks the
annotations written to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from graph.api.context import Info
from graph.api.ontologies import ATTRIBUTES_ARGUMENT, LABELS_ARGUMENT, Ontology
from graph.api.scalars import JSON, LIST_DQL, Connection, iso, to_connection
from graph.db.tables import Recipe as RecipeRow
from graph.domain import recipes

if TYPE_CHECKING:
    from graph.api.datasets import Dataset

__all__ = ["Recipe", "RecipeMutations", "RecipeQueries"]

_STATUSES = strawberry.argument(
    description='Custom statuses tasks of the recipe may set, e.g. `["expert review"]`.'
)


@strawberry.type(
    description="How datasets are annotated: an ontology, instructions, custom statuses. A "
    "dataset with a recipe accepts only annotations its ontology allows."
)
class Recipe:
    id: strawberry.ID
    project_id: strawberry.ID
    name: str
    ontology_id: strawberry.ID
    instructions: str | None
    statuses: list[str]
    creator: str
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, row: RecipeRow) -> Recipe:
        return cls(
            id=strawberry.ID(row.id),
            project_id=strawberry.ID(row.project_id),
            name=row.name,
            ontology_id=strawberry.ID(row.ontology_id),
            instructions=row.instructions,
            statuses=list(row.statuses),
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )

    @strawberry.field
    async def ontology(self, info: Info) -> Ontology:
        row = await info.context.loaders.ontology.load(self.ontology_id)
        assert row is not None  # a recipe's ontology cannot be deleted
        return Ontology.of(row)


@strawberry.type
class RecipeQueries:
    @strawberry.field
    async def recipe(self, info: Info, id: strawberry.ID) -> Recipe:
        ctx = info.context
        return Recipe.of(await recipes.get_recipe(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description='The recipes of a project matching a DQL query (`ontologyId = "..."`), by '
        "its `order by`, else by name."
    )
    async def recipes(
        self,
        info: Info,
        project_id: strawberry.ID,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Recipe]:
        ctx = info.context
        actor = await ctx.actor()
        page = await recipes.list_recipes(
            ctx.platform, actor, project_id, dql=dql, first=first, after=after
        )
        return to_connection(
            page,
            Recipe.of,
            lambda: recipes.count_recipes(ctx.platform, actor, project_id, dql=dql),
        )


@strawberry.type
class RecipeMutations:
    @strawberry.mutation(
        description="A recipe over an ontology of the project (`ontologyId`), or over a new "
        "ontology of the same name made with `labels` and `attributes`."
    )
    async def create_recipe(
        self,
        info: Info,
        project_id: strawberry.ID,
        name: str,
        ontology_id: strawberry.ID | None = None,
        labels: Annotated[JSON | None, LABELS_ARGUMENT] = None,
        attributes: Annotated[JSON | None, ATTRIBUTES_ARGUMENT] = None,
        instructions: str | None = None,
        statuses: Annotated[list[str] | None, _STATUSES] = None,
    ) -> Recipe:
        ctx = info.context
        row = await recipes.create_recipe(
            ctx.platform,
            await ctx.actor(),
            project_id,
            name,
            ontology_id=ontology_id,
            labels=labels,
            attributes=attributes,
            instructions=instructions,
            statuses=statuses,
        )
        return Recipe.of(row)

    @strawberry.mutation(
        description="Change a recipe; only the arguments given are touched (null clears "
        "`instructions` and `statuses`). Annotations are not changed."
    )
    async def update_recipe(
        self,
        info: Info,
        id: strawberry.ID,
        name: str | None = strawberry.UNSET,
        ontology_id: strawberry.ID | None = strawberry.UNSET,
        instructions: str | None = strawberry.UNSET,
        statuses: Annotated[list[str] | None, _STATUSES] = strawberry.UNSET,
    ) -> Recipe:
        given = {
            "name": name,
            "ontology_id": ontology_id,
            "instructions": instructions,
            "statuses": statuses,
        }
        changes = {k: v for k, v in given.items() if v is not strawberry.UNSET}
        ctx = info.context
        row = await recipes.update_recipe(ctx.platform, await ctx.actor(), id, changes)
        return Recipe.of(row)

    @strawberry.mutation(
        description="Delete a recipe (its ontology stays); a recipe datasets use is refused "
        "(`CONFLICT`) unless `force`, which leaves them without a recipe. Returns true."
    )
    async def delete_recipe(self, info: Info, id: strawberry.ID, force: bool = False) -> bool:
        ctx = info.context
        await recipes.delete_recipe(ctx.platform, await ctx.actor(), id, force=force)
        return True

    @strawberry.mutation(
        description="Set a dataset's recipe (null: none, any label is accepted); the annotations "
        "written from then on are checked against its ontology."
    )
    async def set_dataset_recipe(
        self, info: Info, dataset_id: strawberry.ID, recipe_id: strawberry.ID | None
    ) -> Annotated[Dataset, strawberry.lazy("graph.api.datasets")]:
        from graph.api.datasets import Dataset

        ctx = info.context
        row = await recipes.set_dataset_recipe(
            ctx.platform, await ctx.actor(), dataset_id, recipe_id
        )
        return Dataset.of(row)
