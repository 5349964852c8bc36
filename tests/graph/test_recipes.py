"""Recipes and ontologies on SQLite and PostgreSQL: labels as a tree of dot paths, attributes v2,
annotations checked on write against a dataset's recipe, label rename and delete with their
effect on annotations, roles, unknown ids, and bounded list queries."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from graph.db.tables import Annotation, Dataset, Event
from graph.domain import (
    annotations,
    bulk,
    datasets,
    items,
    ontologies,
    projects,
    recipe_check,
    recipes,
    tasks,
    versioning,
)
from graph.domain.annotations import AnnotationSpec
from graph.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from graph.domain.labels import flatten
from tests.asserts import count_statements
from tests.conftest import make_user
from tests.graphql import gql, gql_errors

LABELS = [
    {
        "tag": "animal",
        "color": "#FF0000",
        "children": [
            {"tag": "dog", "displayLabel": "Dog", "children": [{"tag": "puppy"}]},
            {"tag": "cat", "color": [0, 128, 255]},
        ],
    },
    {"tag": "vehicle.car", "color": "#0f0"},
]
ATTRIBUTES = [
    {"key": "color", "type": "options", "values": ["black", "white", "brown"], "scope": ["animal"]},
    {"key": "tags", "type": "options", "multi": True, "values": ["a", "b", "c"]},
    {
        "key": "age",
        "title": "Age (years)",
        "type": "range",
        "range": {"min": 0, "max": 20, "step": 0.5},
        "scope": ["animal.dog"],
    },
    {"key": "occluded", "type": "boolean"},
    {"key": "plate", "type": "freeText", "optional": False, "scope": ["vehicle"]},
]


def box(label: str | None, **attributes: Any) -> AnnotationSpec:
    metadata = {"system": {"attributes": attributes}} if attributes else {}
    coordinates = [{"x": 1, "y": 1}, {"x": 5, "y": 5}]
    return AnnotationSpec(type="box", label=label, coordinates=coordinates, metadata=metadata)


def track(label: str, *snapshots: dict[str, Any], **attributes: Any) -> AnnotationSpec:
    """A video annotation of ``label`` from frame 0 with a keyframe per snapshot (frames 1, 2,
    ...), each given as its label and/or namedAttributes."""
    spec = box(label, **attributes)
    keyframes = [
        {"frame": n, "fixed": True, "type": "box", "data": spec.coordinates, **given}
        for n, given in enumerate(snapshots, start=1)
    ]
    system = {**spec.metadata.get("system", {}), "snapshots_": keyframes}
    spec.metadata = {"system": system}
    spec.frame, spec.end_frame, spec.object_id = 0, len(snapshots), "1"
    return spec


async def _dataset(platform, actor, project_id: str, name: str) -> SimpleNamespace:
    dataset = await datasets.create_dataset(platform, actor, project_id, name)
    async with platform.db.write() as session:
        results, _ = await items.insert_items(
            session,
            actor,
            dataset,
            [
                items.ItemSpec(path="/a.jpg", url="https://x.test/a"),
                items.ItemSpec(path="/b.jpg", url="https://x.test/b"),
            ],
        )
    return SimpleNamespace(id=dataset.id, items=[r.item_id for r in results])


@pytest.fixture
async def zoo(platform, owner, project) -> SimpleNamespace:
    actor = owner[0]
    recipe = await recipes.create_recipe(
        platform,
        actor,
        project.id,
        "zoo",
        labels=LABELS,
        attributes=ATTRIBUTES,
        instructions="Box every animal.",
        statuses=["expert review", " done "],
    )
    data = await _dataset(platform, actor, project.id, "zoo")
    await recipes.set_dataset_recipe(platform, actor, data.id, recipe.id)
    return SimpleNamespace(
        actor=actor,
        project_id=project.id,
        recipe=recipe,
        ontology_id=recipe.ontology_id,
        id=data.id,
        items=data.items,
    )


async def _labels_of(platform, dataset_id: str) -> list[str | None]:
    async with platform.db.read() as session:
        return sorted(
            await session.scalars(
                select(Annotation.label).where(Annotation.dataset_id == dataset_id)
            ),
            key=str,
        )


def _paths(ontology) -> list[str]:
    return list(flatten(ontology.labels))


# --- definitions ----------------------------------------------------------------------------------


async def test_recipe_made_with_labels_and_attributes(platform, zoo) -> None:
    recipe = await recipes.get_recipe(platform, zoo.actor, zoo.recipe.id)
    assert (recipe.name, recipe.instructions, recipe.statuses) == (
        "zoo",
        "Box every animal.",
        ["expert review", "done"],
    )
    ontology = await ontologies.get_ontology(platform, zoo.actor, recipe.ontology_id)
    assert ontology.name == "zoo"
    assert _paths(ontology) == [
        "animal",
        "animal.dog",
        "animal.dog.puppy",
        "animal.cat",
        "vehicle",
        "vehicle.car",
    ]
    animal = ontology.labels[0]
    assert (animal["tag"], animal["displayLabel"], animal["color"]) == (
        "animal",
        "animal",
        "#ff0000",
    )
    dog, cat = animal["children"]
    assert (dog["tag"], dog["displayLabel"], cat["color"]) == ("dog", "Dog", "#0080ff")
    vehicle = ontology.labels[1]
    assert vehicle["children"][0]["color"] == "#00ff00"
    assert vehicle["color"].startswith("#") and len(vehicle["color"]) == 7  # a default color
    age = next(a for a in ontology.attributes if a["key"] == "age")
    assert age == {
        "key": "age",
        "title": "Age (years)",
        "type": "range",
        "scope": ["animal.dog"],
        "optional": True,
        "range": {"min": 0, "max": 20, "step": 0.5},
    }
    tags = next(a for a in ontology.attributes if a["key"] == "tags")
    assert (tags["scope"], tags["multi"], tags["title"]) == (["*"], True, "tags")
    dataset = await datasets.get_dataset(platform, zoo.actor, zoo.id)
    assert dataset.recipe_id == recipe.id


async def test_recipe_over_an_existing_ontology(platform, owner, project) -> None:
    actor = owner[0]
    shared = await ontologies.create_ontology(
        platform, actor, project.id, "shared", labels=[{"tag": "a.b"}]
    )
    first = await recipes.create_recipe(platform, actor, project.id, "one", ontology_id=shared.id)
    second = await recipes.create_recipe(platform, actor, project.id, "two", ontology_id=shared.id)
    assert first.ontology_id == second.ontology_id == shared.id
    assert _paths(shared) == ["a", "a.b"]
    page = await recipes.list_recipes(
        platform, actor, project.id, dql=f'ontologyId = "{shared.id}"'
    )
    assert [r.name for r in page.rows] == ["one", "two"]
    with pytest.raises(InvalidInput) as refused:
        await recipes.create_recipe(
            platform, actor, project.id, "three", ontology_id=shared.id, labels=[{"tag": "x"}]
        )
    assert refused.value.details["field"] == "ontologyId"


async def test_dataloop_roots_are_accepted(platform, owner, project) -> None:
    roots = [
        {
            "value": {"tag": "Fish", "displayLabel": "Fish", "color": "#2206e7"},
            "children": [{"value": {"tag": "Shark", "color": "#000001"}, "children": []}],
        }
    ]
    ontology = await ontologies.create_ontology(platform, owner[0], project.id, "sea", labels=roots)
    assert ontology.labels == [
        {
            "tag": "Fish",
            "displayLabel": "Fish",
            "color": "#2206e7",
            "children": [
                {"tag": "Shark", "displayLabel": "Shark", "color": "#000001", "children": []}
            ],
        }
    ]


@pytest.mark.parametrize(
    ("given", "field", "says"),
    [
        ({"tag": "a"}, "labels", "must be a list"),
        ([{"tag": "a"}, {"tag": "a"}], "labels[1].tag", "given twice"),
        ([{"tag": "a", "children": [{"tag": "b"}]}, {"tag": "a.b"}], "labels[1].tag", "twice"),
        ([{"tag": "a..b"}], "labels[0].tag", "dot path"),
        ([{"tag": " "}], "labels[0].tag", "dot path"),
        ([{"tag": 3}], "labels[0].tag", "is text"),
        ([{"tag": "a", "color": "red"}], "labels[0].color", "#rrggbb"),
        ([{"tag": "a", "color": [0, 0, 256]}], "labels[0].color", "#rrggbb"),
        ([{"tag": "a", "icon": "x"}], "labels[0].icon", "unknown label field"),
        ([{"tag": "a", "displayLabel": ""}], "labels[0].displayLabel", "non-empty"),
        ([{"tag": "a", "children": [{"tag": "x" * 600}]}], "labels[0].children[0].tag", "512"),
        (["a"], "labels[0]", "an object"),
    ],
)
async def test_bad_labels_are_refused(platform, owner, project, given, field, says) -> None:
    with pytest.raises(InvalidInput) as refused:
        await ontologies.create_ontology(platform, owner[0], project.id, "o", labels=given)
    assert refused.value.details["field"] == field
    assert says in refused.value.message


@pytest.mark.parametrize(
    ("given", "field", "says"),
    [
        ({"key": "k"}, "attributes", "must be a list"),
        ([{"key": "k", "type": "slider"}], "attributes[0].type", "options, range, boolean"),
        ([{"key": "k", "type": "options"}], "attributes[0].values", "distinct non-empty"),
        (
            [{"key": "k", "type": "options", "values": ["x", "x"]}],
            "attributes[0].values",
            "distinct",
        ),
        (
            [{"key": "k", "type": "options", "values": ["x"], "multi": "yes"}],
            "attributes[0].multi",
            "true or false",
        ),
        ([{"key": "k", "type": "range"}], "attributes[0].range", "min, max"),
        (
            [{"key": "k", "type": "range", "range": {"min": 5, "max": 5}}],
            "attributes[0].range",
            "min < max",
        ),
        (
            [{"key": "k", "type": "range", "range": {"min": 0, "max": 5, "step": 0}}],
            "attributes[0].range",
            "step > 0",
        ),
        ([{"key": "k", "type": "boolean", "values": ["x"]}], "attributes[0].values", "no field"),
        ([{"key": "", "type": "boolean"}], "attributes[0].key", "1 to 200"),
        ([{"key": "k", "type": "boolean", "scope": ["zebra"]}], "attributes[0].scope", "zebra"),
        ([{"key": "k", "type": "boolean", "scope": []}], "attributes[0].scope", "list of labels"),
        ([{"key": "k", "type": "boolean", "optional": "no"}], "attributes[0].optional", "true"),
        (
            [{"key": "k", "type": "boolean"}, {"key": "k", "type": "freeText"}],
            "attributes[1].key",
            "defined twice",
        ),
    ],
)
async def test_bad_attributes_are_refused(platform, owner, project, given, field, says) -> None:
    with pytest.raises(InvalidInput) as refused:
        await ontologies.create_ontology(
            platform, owner[0], project.id, "o", labels=[{"tag": "a"}], attributes=given
        )
    assert refused.value.details["field"] == field
    assert says in refused.value.message


async def test_bad_recipe_fields_and_names(platform, zoo) -> None:
    actor, project_id = zoo.actor, zoo.project_id
    for kwargs, field in [
        ({"statuses": ["a", "a"]}, "statuses"),
        ({"statuses": [""]}, "statuses"),
        ({"statuses": "a"}, "statuses"),
        ({"instructions": 5}, "instructions"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            await recipes.create_recipe(platform, actor, project_id, "r", **kwargs)
        assert refused.value.details["field"] == field
    with pytest.raises(InvalidInput):
        await recipes.create_recipe(platform, actor, project_id, " ")
    with pytest.raises(Conflict):  # the recipe's name
        await recipes.create_recipe(platform, actor, project_id, "zoo")
    await recipes.delete_recipe(platform, actor, zoo.recipe.id, force=True)
    with pytest.raises(Conflict):  # its ontology's name, still taken
        await recipes.create_recipe(platform, actor, project_id, "zoo")
    with pytest.raises(InvalidInput):
        await recipes.update_recipe(platform, actor, zoo.recipe.id, {"project_id": "x"})


async def test_update_recipe_and_ontology(platform, zoo) -> None:
    actor = zoo.actor
    other = await ontologies.create_ontology(
        platform, actor, zoo.project_id, "other", labels=[{"tag": "tree"}]
    )
    recipe = await recipes.update_recipe(
        platform,
        actor,
        zoo.recipe.id,
        {"name": "zoo-v2", "ontology_id": other.id, "instructions": None, "statuses": ["qa"]},
    )
    assert (recipe.name, recipe.ontology_id, recipe.instructions, recipe.statuses) == (
        "zoo-v2",
        other.id,
        None,
        ["qa"],
    )
    with pytest.raises(InvalidInput):
        await recipes.update_recipe(platform, actor, zoo.recipe.id, {"ontology_id": None})
    # the dataset now checks against the other ontology
    await annotations.create_annotations(platform, actor, zoo.items[0], [box("tree")])
    with pytest.raises(InvalidInput):
        await annotations.create_annotations(platform, actor, zoo.items[0], [box("animal")])
    changed = await ontologies.update_ontology(
        platform,
        actor,
        other.id,
        {"name": "forest", "attributes": [{"key": "tall", "type": "boolean", "scope": ["tree"]}]},
    )
    assert (changed.name, [a["key"] for a in changed.attributes]) == ("forest", ["tall"])
    with pytest.raises(InvalidInput):
        await ontologies.update_ontology(
            platform,
            actor,
            other.id,
            {"attributes": [{"key": "x", "type": "boolean", "scope": ["y"]}]},
        )
    with pytest.raises(InvalidInput):
        await ontologies.update_ontology(platform, actor, other.id, {"labels": []})
    with pytest.raises(Conflict):
        await ontologies.update_ontology(platform, actor, other.id, {"name": "zoo"})


async def test_delete_recipe_and_ontology(platform, zoo) -> None:
    actor = zoo.actor
    with pytest.raises(Conflict) as refused:
        await recipes.delete_recipe(platform, actor, zoo.recipe.id)
    assert "zoo" in refused.value.message
    with pytest.raises(Conflict):  # used by the recipe
        await ontologies.delete_ontology(platform, actor, zoo.ontology_id)
    await recipes.delete_recipe(platform, actor, zoo.recipe.id, force=True)
    dataset = await datasets.get_dataset(platform, actor, zoo.id)
    assert dataset.recipe_id is None
    # without a recipe, any label goes
    await annotations.create_annotations(platform, actor, zoo.items[0], [box("zebra")])
    await ontologies.delete_ontology(platform, actor, zoo.ontology_id)
    with pytest.raises(NotFound):
        await ontologies.get_ontology(platform, actor, zoo.ontology_id)
    with pytest.raises(NotFound):
        await recipes.get_recipe(platform, actor, zoo.recipe.id)


# --- checks on write ------------------------------------------------------------------------------


async def test_valid_annotations_are_written(platform, zoo) -> None:
    written = await annotations.create_annotations(
        platform,
        zoo.actor,
        zoo.items[0],
        [
            box("animal.dog", color="brown", tags=["a", "c"], age=2.5, occluded=False),
            box("animal.dog.puppy", age=0.5, occluded=True),  # age applies under animal.dog
            box("animal.cat", color=None, tags=[]),  # empty values are no values
            box("vehicle.car", plate="AB-123", tags=["b"]),
            box("animal"),
            # keyframes without attributes keep the frame before's (the plate); v1 lists are
            # kept as given
            track(
                "vehicle.car",
                {"label": "vehicle.car", "attributes": ["whatever"]},
                {"namedAttributes": {"plate": "CD-456", "tags": ["a"]}},
                plate="AB-123",
            ),
            box(None),  # no label
            # an item description is not a label of the ontology
            AnnotationSpec(type="item_description", label="sunny", coordinates={"text": "x"}),
        ],
    )
    assert [a.label for a in written][:5] == [
        "animal.dog",
        "animal.dog.puppy",
        "animal.cat",
        "vehicle.car",
        "animal",
    ]
    assert written[0].attributes["tags"] == ["a", "c"]


async def test_a_dataset_without_recipe_accepts_any_label(platform, owner, project) -> None:
    data = await _dataset(platform, owner[0], project.id, "free")
    written = await annotations.create_annotations(
        platform, owner[0], data.items[0], [box("anything", whatever=[1, 2])]
    )
    assert written[0].label == "anything"


BAD = [
    (box("animal.cow"), "annotations[1].label", "label 'animal.cow' is not in ontology 'zoo'"),
    (box("Animal.dog"), "annotations[1].label", "animal.dog"),
    (box("animal", weight=3), "annotations[1].attributes.weight", "not defined"),
    (
        box("vehicle.car", plate="x", color="black"),
        "annotations[1].attributes.color",
        "does not apply to label 'vehicle.car'",
    ),
    (
        box("animal", color="green"),
        "annotations[1].attributes.color",
        "must be one of 'black', 'white', 'brown'; got 'green'",
    ),
    (box("animal", color=["black"]), "annotations[1].attributes.color", "one of"),
    (box("animal", tags="a"), "annotations[1].attributes.tags", "a list of 'a'"),
    (box("animal", tags=["a", "z"]), "annotations[1].attributes.tags", "list"),
    (box("animal", tags=["a", "a"]), "annotations[1].attributes.tags", "list"),
    (
        box("animal.dog", age=25),
        "annotations[1].attributes.age",
        "a number from 0 to 20 in steps of 0.5; got 25",
    ),
    (box("animal.dog", age=-1), "annotations[1].attributes.age", "from 0 to 20"),
    (box("animal.dog", age=1.2), "annotations[1].attributes.age", "steps of 0.5"),
    (box("animal.dog", age="3"), "annotations[1].attributes.age", "a number"),
    (box("animal.dog", age=True), "annotations[1].attributes.age", "a number"),
    (
        box("animal", occluded="yes"),
        "annotations[1].attributes.occluded",
        "must be true or false",
    ),
    (box("animal", occluded=1), "annotations[1].attributes.occluded", "true or"),
    (box("vehicle.car", plate=5), "annotations[1].attributes.plate", "text"),
    (
        box("vehicle.car"),
        "annotations[1].attributes.plate",
        "attribute 'plate' is required for label 'vehicle.car'",
    ),
    (box("vehicle.car", plate="  "), "annotations[1].attributes.plate", "required"),
    # video keyframes: their labels and attributes are the recipe's too
    (
        track("animal.cat", {"label": "animal.dog"}, {"label": "animal.cow"}),
        "annotations[1].metadata.system.snapshots_[1].label",
        "snapshots_[1]: label 'animal.cow' is not in ontology 'zoo'",
    ),
    (
        track(
            "animal",
            {"namedAttributes": {"color": "black"}},
            {"namedAttributes": {"color": "pink"}},
        ),
        "annotations[1].metadata.system.snapshots_[1].namedAttributes.color",
        "attribute 'color' of label 'animal' must be one of",
    ),
    (
        track(
            "animal", {"label": "vehicle.car", "namedAttributes": {"plate": "X", "color": "black"}}
        ),
        "annotations[1].metadata.system.snapshots_[0].namedAttributes.color",
        "does not apply to label 'vehicle.car'",
    ),
    (
        track("vehicle.car", {"namedAttributes": {}}, plate="X"),
        "annotations[1].metadata.system.snapshots_[0].namedAttributes.plate",
        "attribute 'plate' is required for label 'vehicle.car'",
    ),
    (
        AnnotationSpec(
            type="box",
            label="animal",
            coordinates=[{"x": 1, "y": 1}, {"x": 5, "y": 5}],
            metadata={"system": {"attributes": ["x"]}},
        ),
        "annotations[1].metadata.system.attributes",
        "must be an object",
    ),
]


@pytest.mark.parametrize(("spec", "field", "says"), BAD)
async def test_bad_annotations_are_refused(platform, zoo, spec, field, says) -> None:
    with pytest.raises(InvalidInput) as refused:
        await annotations.create_annotations(
            platform, zoo.actor, zoo.items[0], [box("animal.cat"), spec]
        )
    assert refused.value.details["field"] == field
    assert says in refused.value.message
    assert refused.value.message.startswith(("annotations[1]: ", "annotations[1].metadata"))
    assert await _labels_of(platform, zoo.id) == []  # all or none


async def test_keyframes_of_updates_are_checked(platform, zoo) -> None:
    (written,) = await annotations.create_annotations(
        platform, zoo.actor, zoo.items[0], [track("animal.dog", {"label": "animal.dog"})]
    )
    bad = track("animal.dog", {"label": "animal.dog"}, {"label": "animal.cow"}).metadata
    with pytest.raises(InvalidInput) as refused:
        await annotations.update_annotation(platform, zoo.actor, written.id, {"metadata": bad})
    assert refused.value.details["field"] == "annotations[0].metadata.system.snapshots_[1].label"
    async with platform.db.read() as session:
        stored = await session.get(Annotation, written.id)
        assert [s["label"] for s in stored.metadata_["system"]["snapshots_"]] == ["animal.dog"]


async def test_updates_are_checked(platform, zoo) -> None:
    actor = zoo.actor
    (written,) = await annotations.create_annotations(
        platform, actor, zoo.items[0], [box("animal.dog", color="black")]
    )
    changed = await annotations.update_annotation(
        platform, actor, written.id, {"label": "animal.cat"}
    )
    assert changed.label == "animal.cat"
    attributes = "annotations[0].attributes"
    for changes, field, says in [
        ({"label": "animal.cow"}, "annotations[0].label", "not in ontology"),
        ({"label": "vehicle.car"}, f"{attributes}.color", "does not apply"),
        ({"label": "vehicle.car", "attributes": None}, f"{attributes}.plate", "required"),
        (
            {"metadata": {"system": {"attributes": {"color": "pink"}}}},
            f"{attributes}.color",
            "one of",
        ),
    ]:
        with pytest.raises(InvalidInput) as refused:
            await annotations.update_annotation(platform, actor, written.id, changes)
        assert refused.value.details["field"] == field
        assert says in refused.value.message
    assert await _labels_of(platform, zoo.id) == ["animal.cat"]


async def test_a_label_set_by_query_is_checked(platform, zoo) -> None:
    await annotations.create_annotations(platform, zoo.actor, zoo.items[0], [box("animal.cat")])
    with pytest.raises(InvalidInput) as refused:
        await bulk.update_annotations_by_query(
            platform, zoo.actor, zoo.id, dql="", changes={"label": "animal.cow"}
        )
    assert refused.value.details["field"] == "label"
    changed = await bulk.update_annotations_by_query(
        platform, zoo.actor, zoo.id, dql="", changes={"label": "animal.dog"}
    )
    assert changed == 1
    assert await _labels_of(platform, zoo.id) == ["animal.dog"]


async def test_the_recipe_is_read_once_per_write(platform, zoo) -> None:
    many = [box("animal.dog", age=n / 2, color="black") for n in range(40)]
    with count_statements(platform.db.engine) as log:
        await annotations.create_annotations(platform, zoo.actor, zoo.items[0], many)
    reads = [s for s in log.statements if "FROM ontologies" in s]
    assert len(reads) == 1, str(log)


# --- label changes --------------------------------------------------------------------------------


@pytest.fixture
async def labelled(platform, zoo) -> SimpleNamespace:
    """Annotations in the zoo, in a second dataset of the same recipe, and in a dataset without a
    recipe; ``animal.doge`` was written before the zoo had its recipe."""
    actor = zoo.actor
    await recipes.set_dataset_recipe(platform, actor, zoo.id, None)
    await annotations.create_annotations(platform, actor, zoo.items[0], [box("animal.doge")])
    await recipes.set_dataset_recipe(platform, actor, zoo.id, zoo.recipe.id)
    await annotations.create_annotations(
        platform,
        actor,
        zoo.items[0],
        [box("animal.dog", age=1), box("animal.dog.puppy"), box("animal.cat")],
    )
    twin = await _dataset(platform, actor, zoo.project_id, "twin")
    await recipes.set_dataset_recipe(platform, actor, twin.id, zoo.recipe.id)
    await annotations.create_annotations(platform, actor, twin.items[1], [box("animal.dog")])
    free = await _dataset(platform, actor, zoo.project_id, "free")
    await annotations.create_annotations(platform, actor, free.items[0], [box("animal.dog")])
    return SimpleNamespace(zoo=zoo, twin=twin.id, free=free.id, actor=actor)


async def test_rename_relabels_annotations_of_the_label_and_its_children(
    platform, labelled
) -> None:
    zoo, actor = labelled.zoo, labelled.actor
    change = await ontologies.rename_label(
        platform, actor, zoo.ontology_id, "animal.dog", "animal.canine"
    )
    assert change.annotations == 3
    assert _paths(change.ontology) == [
        "animal",
        "animal.canine",
        "animal.canine.puppy",
        "animal.cat",
        "vehicle",
        "vehicle.car",
    ]
    assert change.ontology.labels[0]["children"][0]["displayLabel"] == "Dog"  # kept: it was set
    age = next(a for a in change.ontology.attributes if a["key"] == "age")
    assert age["scope"] == ["animal.canine"]
    assert await _labels_of(platform, zoo.id) == [
        "animal.canine",
        "animal.canine.puppy",
        "animal.cat",
        "animal.doge",
    ]
    assert await _labels_of(platform, labelled.twin) == ["animal.canine"]
    assert await _labels_of(platform, labelled.free) == ["animal.dog"]  # no recipe: untouched
    async with platform.db.read() as session:
        relabelled = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.resource == "annotation", Event.action == "updated")
        )
    assert relabelled == 3
    with pytest.raises(InvalidInput):
        await annotations.create_annotations(platform, actor, zoo.items[1], [box("animal.dog")])
    await annotations.create_annotations(
        platform, actor, zoo.items[1], [box("animal.canine.puppy", age=4)]
    )
    # a video annotation's keyframes are relabelled with it: later writes check them too
    (video,) = await annotations.create_annotations(
        platform, actor, zoo.items[1], [track("animal.cat", {"label": "animal.cat"}, {})]
    )
    # a move under another parent; its default display name follows
    moved = await ontologies.rename_label(platform, actor, zoo.ontology_id, "animal.cat", "pet.cat")
    assert _paths(moved.ontology)[-2:] == ["pet", "pet.cat"]
    assert moved.annotations == 2
    changed = await annotations.update_annotation(platform, actor, video.id, {"status": "review"})
    assert changed.label == "pet.cat"
    assert [s.get("label") for s in changed.metadata_["system"]["snapshots_"]] == ["pet.cat", None]


async def _keyframe_labels(platform, annotation_id: str) -> list[str | None]:
    async with platform.db.read() as session:
        stored = await session.get(Annotation, annotation_id)
        return [s.get("label") for s in stored.metadata_["system"]["snapshots_"]]


async def test_rename_relabels_keyframes_of_annotations_of_other_labels(platform, labelled) -> None:
    """A track whose label changes mid-track holds keyframes of a label other than its own:
    a rename of that label reaches them too, and refuses while a read-only dataset holds them."""
    zoo, actor = labelled.zoo, labelled.actor
    (changing,) = await annotations.create_annotations(
        platform,
        actor,
        zoo.items[1],
        [track("animal.dog", {"label": "animal.cat"}, {"label": "animal.dog"})],
    )
    twin_items = await items.list_items(platform, actor, labelled.twin, folders=False)
    (locked,) = await annotations.create_annotations(
        platform, actor, twin_items.rows[0].id, [track("animal.dog", {"label": "animal.cat"})]
    )
    await datasets.update_dataset(platform, actor, labelled.twin, readonly=True)
    with pytest.raises(Conflict) as refused:
        await ontologies.rename_label(platform, actor, zoo.ontology_id, "animal.cat", "pet.cat")
    assert "read-only" in refused.value.message and "keyframes" in refused.value.message
    assert await _keyframe_labels(platform, changing.id) == ["animal.cat", "animal.dog"]
    await datasets.update_dataset(platform, actor, labelled.twin, readonly=False)
    await annotations.delete_annotations(platform, actor, [locked.id])
    change = await ontologies.rename_label(
        platform, actor, zoo.ontology_id, "animal.cat", "pet.cat"
    )
    assert change.annotations == 2  # the cat box, and the dog track's keyframe
    assert await _keyframe_labels(platform, changing.id) == ["pet.cat", "animal.dog"]
    async with platform.db.read() as session:
        fields = (
            await session.scalars(
                select(Event.payload).where(
                    Event.resource_id == changing.id, Event.action == "updated"
                )
            )
        ).all()
    assert [p["fields"] for p in fields] == [["metadata"]]
    # later writes are checked against the renamed labels, and pass
    changed = await annotations.update_annotation(
        platform, actor, changing.id, {"status": "review"}
    )
    assert changed.status == "review"


async def test_a_label_set_by_query_relabels_keyframes(platform, zoo, monkeypatch) -> None:
    """Keyframes labelled as their annotation take its new label, chunk by chunk; a keyframe
    with a label of its own keeps it; with a metadata patch both apply."""
    monkeypatch.setattr(bulk, "CHUNK", 2)
    actor = zoo.actor
    written = await annotations.create_annotations(
        platform,
        actor,
        zoo.items[0],
        [
            track("animal.cat", {"label": "animal.cat"}, {}),
            track("animal.cat", {"label": "animal.dog.puppy"}, {"label": "animal.cat"}),
            box("animal.cat"),
            track("animal.dog", {"label": "animal.dog"}),
            track("animal.cat", {"label": "animal.cat"}),
        ],
    )
    changed = await bulk.update_annotations_by_query(
        platform,
        actor,
        zoo.id,
        dql='label = "animal.cat"',
        changes={"label": "animal.dog"},
        set_user_metadata={"checked": True},
    )
    assert changed == 4
    assert await _keyframe_labels(platform, written[0].id) == ["animal.dog", None]
    assert await _keyframe_labels(platform, written[1].id) == ["animal.dog.puppy", "animal.dog"]
    assert await _keyframe_labels(platform, written[3].id) == ["animal.dog"]  # not selected
    assert await _keyframe_labels(platform, written[4].id) == ["animal.dog"]
    async with platform.db.read() as session:
        last = await session.get(Annotation, written[4].id)
        assert last.metadata_["user"] == {"checked": True}
    # without a patch only the annotations whose keyframes changed have their metadata written
    await bulk.update_annotations_by_query(
        platform, actor, zoo.id, dql="", changes={"label": "animal.cat"}
    )
    assert await _keyframe_labels(platform, written[0].id) == ["animal.cat", None]
    assert await _keyframe_labels(platform, written[1].id) == ["animal.dog.puppy", "animal.cat"]
    async with platform.db.read() as session:
        payloads = {
            e.resource_id: e.payload["fields"]
            for e in await session.scalars(
                select(Event).where(Event.resource == "annotation", Event.action == "updated")
            )
        }  # the last event of each
    assert payloads[written[2].id] == ["label"]
    assert payloads[written[0].id] == ["label", "metadata"]
    # a label cleared: the keyframes that had the former label follow the annotation's
    await bulk.update_annotations_by_query(
        platform, actor, zoo.id, dql=f'id = "{written[4].id}"', changes={"label": None}
    )
    assert await _keyframe_labels(platform, written[4].id) == [None]


async def test_a_label_updated_relabels_keyframes(platform, zoo) -> None:
    actor = zoo.actor
    (video,) = await annotations.create_annotations(
        platform,
        actor,
        zoo.items[0],
        [track("animal.cat", {"label": "animal.cat"}, {"label": "animal.dog"})],
    )
    changed = await annotations.update_annotation(
        platform, actor, video.id, {"label": "animal.dog.puppy"}
    )
    assert changed.label == "animal.dog.puppy"
    assert await _keyframe_labels(platform, video.id) == ["animal.dog.puppy", "animal.dog"]
    # metadata given with the label is taken as given (and checked)
    given = track("animal.cat", {"label": "animal.cow"}).metadata
    with pytest.raises(InvalidInput) as refused:
        await annotations.update_annotation(
            platform, actor, video.id, {"label": "animal.cat", "metadata": given}
        )
    assert refused.value.details["field"] == "annotations[0].metadata.system.snapshots_[0].label"


# two writers at once: PostgreSQL only (SQLite runs one write at a time)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_rename_waits_for_a_write_checked_against_the_old_labels(platform, zoo) -> None:
    async with platform.db.write() as session:
        dataset = await session.get(Dataset, zoo.id)
        await recipe_check.rules_of(session, dataset)  # as create_annotations reads the recipe
        rename = asyncio.create_task(
            ontologies.rename_label(platform, zoo.actor, zoo.ontology_id, "animal.dog", "animal.k9")
        )
        await asyncio.sleep(0.3)
        assert not rename.done()
        session.add(
            Annotation(
                item_id=zoo.items[0],
                dataset_id=zoo.id,
                type="class",
                label="animal.dog",
                coordinates=[],
                attributes=[],
            )
        )
    change = await rename
    assert change.annotations == 1
    assert await _labels_of(platform, zoo.id) == ["animal.k9"]


async def test_bad_renames_are_refused(platform, labelled) -> None:
    zoo, actor = labelled.zoo, labelled.actor
    for label, new, error in [
        ("animal.cow", "animal.ox", InvalidInput),
        ("animal.dog", "animal.cat", Conflict),
        ("animal", "animal.beast", InvalidInput),
        ("animal.dog", "animal..x", InvalidInput),
    ]:
        with pytest.raises(error):
            await ontologies.rename_label(platform, actor, zoo.ontology_id, label, new)
    await datasets.update_dataset(platform, actor, labelled.twin, readonly=True)
    with pytest.raises(Conflict) as refused:
        await ontologies.rename_label(platform, actor, zoo.ontology_id, "animal.dog", "animal.k9")
    assert "read-only" in refused.value.message
    assert await _labels_of(platform, zoo.id) == [
        "animal.cat",
        "animal.dog",
        "animal.dog.puppy",
        "animal.doge",
    ]


async def test_delete_of_a_used_label_is_refused_by_default(platform, labelled) -> None:
    zoo, actor = labelled.zoo, labelled.actor
    with pytest.raises(Conflict) as refused:
        await ontologies.delete_label(platform, actor, zoo.ontology_id, "animal.dog")
    assert refused.value.details["annotations"] == 3
    assert "twin, zoo" in refused.value.message
    ontology = await ontologies.get_ontology(platform, actor, zoo.ontology_id)
    assert "animal.dog" in _paths(ontology)
    with pytest.raises(InvalidInput):
        await ontologies.delete_label(
            platform, actor, zoo.ontology_id, "animal.dog", on_annotations="ignore"
        )
    with pytest.raises(InvalidInput):
        await ontologies.delete_label(platform, actor, zoo.ontology_id, "animal.cow")
    # an unused label goes at once, with the attributes scoped only to it
    change = await ontologies.delete_label(platform, actor, zoo.ontology_id, "vehicle")
    assert (change.annotations, _paths(change.ontology)[-1]) == (0, "animal.cat")
    assert "plate" not in [a["key"] for a in change.ontology.attributes]


async def test_delete_a_label_with_its_annotations(platform, labelled) -> None:
    zoo, actor = labelled.zoo, labelled.actor
    change = await ontologies.delete_label(
        platform, actor, zoo.ontology_id, "animal.dog", on_annotations="delete"
    )
    assert change.annotations == 3
    assert _paths(change.ontology) == ["animal", "animal.cat", "vehicle", "vehicle.car"]
    assert "age" not in [a["key"] for a in change.ontology.attributes]  # scoped to animal.dog
    assert await _labels_of(platform, zoo.id) == ["animal.cat", "animal.doge"]
    assert await _labels_of(platform, labelled.twin) == []
    assert await _labels_of(platform, labelled.free) == ["animal.dog"]
    dataset = await datasets.get_dataset(platform, actor, zoo.id)
    assert dataset.annotations_count == 2
    item = await items.get_item(platform, actor, zoo.items[0])
    assert item.annotations_count == 2


async def test_delete_a_label_keeping_its_annotations(platform, labelled) -> None:
    zoo, actor = labelled.zoo, labelled.actor
    change = await ontologies.delete_label(
        platform, actor, zoo.ontology_id, "animal.dog", on_annotations="keep"
    )
    assert change.annotations == 0
    assert await _labels_of(platform, zoo.id) == [
        "animal.cat",
        "animal.dog",
        "animal.dog.puppy",
        "animal.doge",
    ]
    async with platform.db.read() as session:
        kept = await session.scalar(
            select(Annotation.id).where(Annotation.label == "animal.dog.puppy")
        )
    # the next write of a kept annotation must give a label the ontology has
    with pytest.raises(InvalidInput):
        await annotations.update_annotation(platform, actor, kept, {"status": "approved"})
    changed = await annotations.update_annotation(platform, actor, kept, {"label": "animal"})
    assert changed.label == "animal"


async def test_add_labels(platform, zoo) -> None:
    actor = zoo.actor
    ontology = await ontologies.add_labels(
        platform,
        actor,
        zoo.ontology_id,
        [{"tag": "animal.bird.owl", "color": "#123456"}, {"tag": "plant"}],
    )
    assert _paths(ontology) == [
        "animal",
        "animal.dog",
        "animal.dog.puppy",
        "animal.cat",
        "animal.bird",
        "animal.bird.owl",
        "vehicle",
        "vehicle.car",
        "plant",
    ]
    with pytest.raises(Conflict):
        await ontologies.add_labels(platform, actor, zoo.ontology_id, [{"tag": "animal.cat"}])
    with pytest.raises(InvalidInput):
        await ontologies.add_labels(platform, actor, zoo.ontology_id, [])
    upserted = await ontologies.add_labels(
        platform,
        actor,
        zoo.ontology_id,
        [{"tag": "animal.cat", "displayLabel": "Cat", "color": "#000000"}],
        upsert=True,
    )
    cat = upserted.labels[0]["children"][1]
    assert (cat["tag"], cat["displayLabel"], cat["color"]) == ("cat", "Cat", "#000000")
    await annotations.create_annotations(platform, actor, zoo.items[0], [box("animal.bird.owl")])


# --- access ---------------------------------------------------------------------------------------


async def test_roles(platform, zoo) -> None:
    owner = zoo.actor
    members = {}
    for role in ("annotator", "annotationManager", "developer"):
        members[role], _ = await make_user(platform, f"{role.lower()}@example.com")
        await projects.add_member(platform, owner, zoo.project_id, members[role].email, role)
    stranger, _ = await make_user(platform, "stranger@example.com")
    annotator = members["annotator"]

    assert (await recipes.get_recipe(platform, annotator, zoo.recipe.id)).name == "zoo"
    assert len((await recipes.list_recipes(platform, annotator, zoo.project_id)).rows) == 1
    assert (await ontologies.get_ontology(platform, annotator, zoo.ontology_id)).name == "zoo"
    assert len((await ontologies.list_ontologies(platform, annotator, zoo.project_id)).rows) == 1
    with pytest.raises(NotFound):  # an annotator annotates the items given to it in a task
        await annotations.create_annotations(platform, annotator, zoo.items[0], [box("animal")])
    await tasks.create_task(
        platform,
        owner,
        zoo.id,
        "work",
        dql=f'id = "{zoo.items[0]}"',
        workload=[(annotator.email, 100)],
    )
    await annotations.create_annotations(platform, annotator, zoo.items[0], [box("animal")])

    def tag(who) -> str:
        return who.email.partition("@")[0]

    edits = [
        lambda who: recipes.create_recipe(platform, who, zoo.project_id, f"r-{tag(who)}"),
        lambda who: recipes.update_recipe(platform, who, zoo.recipe.id, {"statuses": ["x"]}),
        lambda who: recipes.set_dataset_recipe(platform, who, zoo.id, zoo.recipe.id),
        lambda who: ontologies.create_ontology(platform, who, zoo.project_id, f"o-{tag(who)}"),
        lambda who: ontologies.add_labels(platform, who, zoo.ontology_id, [{"tag": tag(who)}]),
        lambda who: ontologies.rename_label(
            platform, who, zoo.ontology_id, tag(who), tag(who) + "-2"
        ),
        lambda who: ontologies.delete_label(platform, who, zoo.ontology_id, tag(who) + "-2"),
        lambda who: ontologies.update_ontology(platform, who, zoo.ontology_id, {"attributes": []}),
    ]
    for edit in edits:
        with pytest.raises(Forbidden):
            await edit(annotator)
        with pytest.raises(NotFound):
            await edit(stranger)
    for role in ("annotationManager", "developer"):
        for edit in edits:
            await edit(members[role])
    with pytest.raises(Forbidden):
        await recipes.delete_recipe(platform, annotator, zoo.recipe.id, force=True)
    with pytest.raises(NotFound):
        await recipes.get_recipe(platform, stranger, zoo.recipe.id)
    with pytest.raises(NotFound):
        await ontologies.list_ontologies(platform, stranger, zoo.project_id)
    await recipes.delete_recipe(platform, members["annotationManager"], zoo.recipe.id, force=True)


async def test_unknown_and_foreign_ids(platform, zoo) -> None:
    actor = zoo.actor
    other = await projects.create_project(platform, actor, "other")
    foreign = await recipes.create_recipe(platform, actor, other.id, "foreign", labels=[])
    calls = [
        recipes.get_recipe(platform, actor, "nope"),
        recipes.update_recipe(platform, actor, "nope", {"name": "x"}),
        recipes.delete_recipe(platform, actor, "nope"),
        recipes.set_dataset_recipe(platform, actor, "nope", zoo.recipe.id),
        recipes.set_dataset_recipe(platform, actor, zoo.id, "nope"),
        recipes.set_dataset_recipe(platform, actor, zoo.id, foreign.id),
        recipes.create_recipe(platform, actor, zoo.project_id, "x", ontology_id="nope"),
        recipes.create_recipe(
            platform, actor, zoo.project_id, "x", ontology_id=foreign.ontology_id
        ),
        recipes.update_recipe(platform, actor, zoo.recipe.id, {"ontology_id": foreign.ontology_id}),
        ontologies.get_ontology(platform, actor, "nope"),
        ontologies.update_ontology(platform, actor, "nope", {"name": "x"}),
        ontologies.delete_ontology(platform, actor, "nope"),
        ontologies.add_labels(platform, actor, "nope", [{"tag": "x"}]),
        ontologies.rename_label(platform, actor, "nope", "a", "b"),
        ontologies.delete_label(platform, actor, "nope", "a"),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call


async def test_a_clone_keeps_the_recipe(platform, zoo) -> None:
    clone = await versioning.clone_dataset(platform, zoo.actor, zoo.id, "zoo-2")
    assert clone.recipe_id == zoo.recipe.id
    page = await datasets.list_datasets(
        platform, zoo.actor, zoo.project_id, dql=f'recipeId = "{zoo.recipe.id}"'
    )
    assert [d.name for d in page.rows] == ["zoo", "zoo-2"]


# --- API ------------------------------------------------------------------------------------------

RECIPES = """query($p: ID!) { recipes(projectId: $p) { totalCount nodes {
    name statuses ontology { name attributes { key } flatLabels { path color } } } } }"""


async def test_listing_recipes_is_a_bounded_number_of_statements(
    platform, client, owner, project
) -> None:
    actor = owner[0]

    async def statements() -> int:
        with count_statements(platform.db.engine) as log:
            answer = await gql(client, RECIPES, {"p": project.id})
        assert len(answer["recipes"]["nodes"]) == count
        return len(log)

    for n in range(3):
        await recipes.create_recipe(platform, actor, project.id, f"r{n}", labels=[{"tag": "a"}])
    count = 3
    few = await statements()
    for n in range(3, 30):
        await recipes.create_recipe(platform, actor, project.id, f"r{n}", labels=[{"tag": "a"}])
    count = 30
    assert await statements() == few
    with count_statements(platform.db.engine) as log:
        await recipes.list_recipes(platform, actor, project.id, first=100)
    assert len(log) == 2, str(log)  # the role check, the page


async def test_over_graphql(platform, client, owner, project) -> None:
    data = await _dataset(platform, owner[0], project.id, "zoo")
    made = await gql(
        client,
        """mutation($p: ID!, $labels: JSON, $attributes: JSON) {
            createRecipe(projectId: $p, name: "zoo", labels: $labels, attributes: $attributes,
                         statuses: ["expert review"], instructions: "Box them") {
                id name statuses instructions ontologyId
                ontology {
                    labels { tag path displayLabel color children { tag path } }
                    attributes { key type scope optional values multi range { min max step } }
                }
            } }""",
        {"p": project.id, "labels": LABELS, "attributes": ATTRIBUTES},
    )
    recipe = made["createRecipe"]
    assert recipe["statuses"] == ["expert review"]
    age = next(a for a in recipe["ontology"]["attributes"] if a["key"] == "age")
    assert age == {
        "key": "age",
        "type": "range",
        "scope": ["animal.dog"],
        "optional": True,
        "values": None,
        "multi": None,
        "range": {"min": 0, "max": 20, "step": 0.5},
    }
    animal = recipe["ontology"]["labels"][0]
    assert (animal["path"], animal["color"]) == ("animal", "#ff0000")
    assert [c["path"] for c in animal["children"]] == ["animal.dog", "animal.cat"]
    answer = await gql(
        client,
        """mutation($d: ID!, $r: ID) { setDatasetRecipe(datasetId: $d, recipeId: $r) {
            recipeId recipe { name } } }""",
        {"d": data.id, "r": recipe["id"]},
    )
    assert answer["setDatasetRecipe"] == {"recipeId": recipe["id"], "recipe": {"name": "zoo"}}

    create = """mutation($i: ID!, $a: [AnnotationInput!]!) {
        createAnnotations(itemId: $i, annotations: $a) { id label } }"""
    errors = await gql_errors(
        client,
        create,
        {
            "i": data.items[0],
            "a": [
                {"type": "class", "label": "animal.cat"},
                {
                    "type": "class",
                    "label": "animal.dog",
                    "metadata": {"system": {"attributes": {"age": 30}}},
                },
            ],
        },
    )
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
    assert errors[0]["extensions"]["field"] == "annotations[1].attributes.age"
    assert errors[0]["extensions"]["attribute"] == "age"
    assert "from 0 to 20" in errors[0]["message"]
    await gql(
        client,
        create,
        {"i": data.items[0], "a": [{"type": "class", "label": "animal.dog"}]},
    )

    renamed = await gql(
        client,
        """mutation($o: ID!) { renameLabel(ontologyId: $o, label: "animal.dog",
            newLabel: "animal.canine") { annotations ontology { flatLabels { path } } } }""",
        {"o": recipe["ontologyId"]},
    )
    assert renamed["renameLabel"]["annotations"] == 1
    assert "animal.canine" in [x["path"] for x in renamed["renameLabel"]["ontology"]["flatLabels"]]
    delete = """mutation($o: ID!, $mode: OnAnnotations!) { deleteLabel(ontologyId: $o,
        label: "animal.canine", onAnnotations: $mode) { annotations } }"""
    errors = await gql_errors(client, delete, {"o": recipe["ontologyId"], "mode": "REFUSE"})
    assert (errors[0]["extensions"]["code"], errors[0]["extensions"]["annotations"]) == (
        "CONFLICT",
        1,
    )
    deleted = await gql(client, delete, {"o": recipe["ontologyId"], "mode": "DELETE"})
    assert deleted["deleteLabel"]["annotations"] == 1

    listed = await gql(
        client,
        """query($p: ID!) { ontologies(projectId: $p, dql: "name = \\"zoo\\"") {
            totalCount nodes { name attributes { key } } } }""",
        {"p": project.id},
    )
    assert listed["ontologies"]["totalCount"] == 1
    keys = [a["key"] for a in listed["ontologies"]["nodes"][0]["attributes"]]
    assert keys == ["color", "tags", "occluded", "plate"]  # age went with its only label
    errors = await gql_errors(client, 'query { recipe(id: "nope") { name } }')
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    errors = await gql_errors(
        client,
        "mutation($r: ID!) { deleteRecipe(id: $r) }",
        {"r": recipe["id"]},
    )
    assert errors[0]["extensions"]["code"] == "CONFLICT"
    assert (
        await gql(
            client, "mutation($r: ID!) { deleteRecipe(id: $r, force: true) }", {"r": recipe["id"]}
        )
    )["deleteRecipe"] is True
