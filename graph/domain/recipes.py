"""Recipes: how a project's datasets are annotated, with an ontology (labels and attributes),
instructions for annotators and custom statuses (``"expert review"``).

A dataset with a recipe checks every annotation written to it against the recipe's ontology
(graph/domain/recipe_check.py); a dataset without one accepts any label. Annotation managers,
developers and owners create, change and delete recipes and set a dataset's recipe; annotators
read them. Switching a recipe or a dataset's recipe changes no annotation: the next write of one
is checked against the new ontology.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graph.db.tables import Dataset, Recipe, Task, utcnow
from graph.domain import events, listing, ontologies
from graph.domain.access import Actor, Role, check_role, member_role, require_role
from graph.domain.datasets import dataset_for
from graph.domain.errors import Conflict, InvalidInput, NotFound
from graph.domain.ontologies import EDITOR
from graph.domain.paging import Page
from graph.domain.platform import Platform

__all__ = [
    "count_recipes",
    "create_recipe",
    "delete_recipe",
    "get_recipe",
    "list_recipes",
    "set_dataset_recipe",
    "update_recipe",
]

_CHANGEABLE = ("name", "ontology_id", "instructions", "statuses")
_MAX_INSTRUCTIONS = 100_000
_MAX_STATUSES = 50


def _check_statuses(given: Any) -> list[str]:
    if given is None:
        return []
    if not isinstance(given, list) or len(given) > _MAX_STATUSES:
        raise InvalidInput(f"statuses is a list of at most {_MAX_STATUSES} names", field="statuses")
    out = []
    for status in given:
        name = status.strip() if isinstance(status, str) else ""
        if not name or len(name) > 100:
            raise InvalidInput("a status has 1 to 100 characters", field="statuses")
        if name in out:
            raise InvalidInput(f"status {name!r} is given twice", field="statuses")
        out.append(name)
    return out


def _check_instructions(given: Any) -> str | None:
    if given is None or given == "":
        return None
    if not isinstance(given, str) or len(given) > _MAX_INSTRUCTIONS:
        raise InvalidInput(
            f"instructions are text of at most {_MAX_INSTRUCTIONS} characters", field="instructions"
        )
    return given


async def _recipe_for(session: AsyncSession, actor: Actor, recipe_id: str, needed: Role) -> Recipe:
    row = (
        await session.execute(
            select(Recipe, member_role(actor, Recipe.project_id)).where(Recipe.id == recipe_id)
        )
    ).first()
    if row is None:
        raise NotFound("recipe", recipe_id)
    recipe, role = row
    check_role(actor, None if role is None else Role[role], needed, "recipe", recipe_id)
    return recipe


async def _ontology_of_project(
    session: AsyncSession, actor: Actor, ontology_id: str, project_id: str
) -> None:
    ontology = await ontologies.ontology_for(session, actor, ontology_id, Role.annotator)
    if ontology.project_id != project_id:  # another project's, even one the actor is in
        raise NotFound("ontology", ontology_id)


async def _event(
    session: AsyncSession, actor: Actor, recipe: Recipe, action: str, **more: Any
) -> None:
    await events.record(
        session,
        project_id=recipe.project_id,
        resource="recipe",
        action=action,
        resource_id=recipe.id,
        actor=actor.email,
        payload={"name": recipe.name, "ontologyId": recipe.ontology_id, **more},
    )


# --- reading --------------------------------------------------------------------------------------


async def get_recipe(platform: Platform, actor: Actor, recipe_id: str) -> Recipe:
    async with platform.db.read() as session:
        return await _recipe_for(session, actor, recipe_id, Role.annotator)


async def list_recipes(
    platform: Platform,
    actor: Actor,
    project_id: str,
    *,
    dql: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Recipe]:
    """The project's recipes matching a DQL query (``ontologyId = "..."`` finds the recipes of
    an ontology), by its ``order by``, else by name."""
    return await listing.list_named(
        platform, actor, Recipe, "recipes", project_id, first, after, dql=dql
    )


async def count_recipes(
    platform: Platform, actor: Actor, project_id: str, *, dql: str | None = None
) -> int:
    return await listing.count_named(platform, actor, Recipe, "recipes", project_id, dql=dql)


# --- writing --------------------------------------------------------------------------------------


async def create_recipe(
    platform: Platform,
    actor: Actor,
    project_id: str,
    name: str,
    *,
    ontology_id: str | None = None,
    labels: Any = None,
    attributes: Any = None,
    instructions: str | None = None,
    statuses: Any = None,
) -> Recipe:
    """A recipe over an ontology of the project (``ontology_id``), or over a new ontology of the
    same name made with ``labels`` and ``attributes`` (as Dataloop's SDK makes them)."""
    name = ontologies.check_name(name, "a recipe")
    if ontology_id is not None and (labels is not None or attributes is not None):
        raise InvalidInput("give ontologyId or labels and attributes, not both", field="ontologyId")
    kept_statuses = _check_statuses(statuses)
    kept_instructions = _check_instructions(instructions)
    async with platform.db.write() as session:
        await require_role(session, actor, project_id, EDITOR)
        await listing.check_free(session, Recipe, project_id, name, "a recipe")
        if ontology_id is None:
            made = await ontologies.insert_ontology(
                session, actor, project_id, name, labels, attributes
            )
            ontology_id = made.id
        else:
            await _ontology_of_project(session, actor, ontology_id, project_id)
        recipe = Recipe(
            project_id=project_id,
            name=name,
            ontology_id=ontology_id,
            instructions=kept_instructions,
            statuses=kept_statuses,
            creator=actor.email,
        )
        session.add(recipe)
        await listing.save_named(session, recipe, "a recipe")
        await _event(session, actor, recipe, "created")
    return recipe


async def update_recipe(
    platform: Platform, actor: Actor, recipe_id: str, changes: Mapping[str, Any]
) -> Recipe:
    """Change some of ``name``, ``ontology_id`` (another ontology of the project),
    ``instructions`` and ``statuses`` (``None`` clears the last two)."""
    unknown = sorted(set(changes) - set(_CHANGEABLE))
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(unknown)}", field=unknown[0])
    async with platform.db.write() as session:
        recipe = await _recipe_for(session, actor, recipe_id, EDITOR)
        if "name" in changes:
            name = ontologies.check_name(changes["name"], "a recipe")
            if name != recipe.name:
                await listing.check_free(session, Recipe, recipe.project_id, name, "a recipe")
            recipe.name = name
        if "ontology_id" in changes:
            if changes["ontology_id"] is None:
                raise InvalidInput("a recipe always has an ontology", field="ontologyId")
            await _ontology_of_project(session, actor, changes["ontology_id"], recipe.project_id)
            recipe.ontology_id = changes["ontology_id"]
        if "instructions" in changes:
            recipe.instructions = _check_instructions(changes["instructions"])
        if "statuses" in changes:
            recipe.statuses = _check_statuses(changes["statuses"])
        recipe.updated_at = utcnow()
        await listing.save_named(session, recipe, "a recipe")
        await _event(session, actor, recipe, "updated", fields=sorted(changes))
    return recipe


async def delete_recipe(
    platform: Platform, actor: Actor, recipe_id: str, *, force: bool = False
) -> None:
    """Delete a recipe (its ontology stays). A recipe datasets use is refused unless ``force``,
    which leaves those datasets without a recipe; tasks using it are left without one."""
    async with platform.db.write() as session:
        recipe = await _recipe_for(session, actor, recipe_id, EDITOR)
        using = list(
            await session.scalars(
                select(Dataset.name).where(Dataset.recipe_id == recipe_id).order_by(Dataset.name)
            )
        )
        if using and not force:
            raise Conflict(
                f"recipe {recipe.name!r} is the recipe of datasets {', '.join(using)}; "
                "delete it with force to leave them without one",
                id=recipe_id,
            )
        if using:
            await session.execute(
                update(Dataset).where(Dataset.recipe_id == recipe_id).values(recipe_id=None)
            )
        # tasks keep working without it, as a dataset without a recipe does
        await session.execute(
            update(Task).where(Task.recipe_id == recipe_id).values(recipe_id=None)
        )
        await session.delete(recipe)
        await _event(session, actor, recipe, "deleted", datasets=using)


async def set_dataset_recipe(
    platform: Platform, actor: Actor, dataset_id: str, recipe_id: str | None
) -> Dataset:
    """Make a recipe of the dataset's project the dataset's recipe (``None``: no recipe, any
    label is accepted). Existing annotations are not checked again."""
    async with platform.db.write() as session:
        dataset = await dataset_for(session, actor, dataset_id, EDITOR)
        if recipe_id is not None:
            recipe = await _recipe_for(session, actor, recipe_id, Role.annotator)
            if recipe.project_id != dataset.project_id:
                raise NotFound("recipe", recipe_id)
        if dataset.recipe_id != recipe_id:
            dataset.recipe_id = recipe_id
            dataset.updated_at = utcnow()
            await session.flush()
            await events.record(
                session,
                project_id=dataset.project_id,
                resource="dataset",
                action="updated",
                resource_id=dataset.id,
                actor=actor.email,
                payload={"recipeId": recipe_id},
            )
    return dataset
