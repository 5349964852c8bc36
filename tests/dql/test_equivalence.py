"""The two front ends agree: a DQL text and the Dataloop JSON that means the same give equal ASTs,
so the compiler (and every index) serves both alike."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dql import from_json, parse

# (text, Dataloop JSON, from_json options). With defaults on, the text spells out the defaults
# the JSON front end adds, first, as the SDK puts them.
PAIRS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        'hidden = false and metadata.system.tags.train = true and type = "file"',
        {
            "filter": {
                "$and": [
                    {"hidden": False},
                    {"metadata": {"system": {"tags": {"train": True}}}},
                    {"type": "file"},
                ]
            }
        },
        {},
    ),
    (
        'hidden = false and type = "file" and filename like "/dogs/**"',
        {"filter": {"$and": [{"filename": "/dogs"}]}},
        {},
    ),
    ('dir = "/train"', {"dir": "/train"}, {"defaults": False}),
    (
        'annotations.any(label in ("cat", "dog"))',
        {
            "join": {
                "on": {"resource": "annotations", "local": "itemId", "forigen": "id"},
                "filter": {"$and": [{"label": {"$in": ["cat", "dog"]}}]},
            }
        },
        {"defaults": False},
    ),
    (
        "has metadata.user.reviewed and not has metadata.user.score",
        {
            "$and": [
                {"metadata.user.reviewed": {"$exists": True}},
                {"metadata": {"user": {"score": {"$exists": False}}}},
            ]
        },
        {"defaults": False},
    ),
    (
        'width > 640 and width <= 1920 and height >= 10 and height < 20 and name != "x"',
        {
            "width": {"$gt": 640, "$lte": 1920},
            "height": {"$gte": 10, "$lt": 20},
            "name": {"$ne": "x"},
        },
        {"defaults": False},
    ),
    (
        'annotated = true or metadata.system.mimetype like "image/*"',
        {"$or": [{"annotated": True}, {"metadata.system.mimetype": "image/*"}]},
        {"defaults": False},
    ),
    (
        "a = 1 and b = 2 and (c = 3 or d = 4)",
        {"filter": {"$and": [{"a": 1}, {"b": 2}], "$or": [{"c": 3}, {"d": 4}]}},
        {"defaults": False},
    ),
    (
        'metadata.user.camera not in ("front", "back")',
        {"metadata.user.camera": {"$nin": ["front", "back"]}},
        {"defaults": False},
    ),
    (
        'not filename like "*.png"',
        {"filename": {"$ne": "*.png"}},
        {"defaults": False},
    ),
    (
        'hidden = false and type = "file" and id > "64ab00000000000000000000" order by id asc',
        {
            "filter": {"$and": [{"id": {"$gt": "64ab00000000000000000000"}}]},
            "sort": {"id": "ascending"},
            "page": 0,
            "pageSize": 1000,
        },
        {},
    ),
    (
        'type != "note" and label = "cat" and item.any(filename like "/train/**")',
        {
            "filter": {"label": "cat"},
            "join": {"on": {"resource": "items"}, "filter": {"filename": "/train"}},
        },
        {"resource": "annotations"},
    ),
    ("metadata.user.camera = null", {"metadata.user.camera": None}, {"defaults": False}),
    (
        "a = 1 or b = 2 or c = 3",
        {"$or": [{"$or": [{"a": 1}, {"b": 2}]}, {"c": 3}]},
        {"defaults": False},
    ),
    ('type = "file" and hidden = true', {"hidden": True}, {}),
    (
        "order by filename asc, createdAt desc",
        {"sort": {"filename": "ascending", "createdAt": "descending"}},
        {"defaults": False},
    ),
    (
        'metadata.system.refs.id in ("t1") and metadata.system.annotationStatus in '
        '("completed", "approved")',
        {
            "metadata.system.refs.id": {"$in": ["t1"]},
            "metadata.system.annotationStatus": {"$in": ["completed", "approved"]},
        },
        {"defaults": False},
    ),
    (
        'metadata.user.`my key` = "it\'s \\"quoted\\" \\u00e9"',
        {"metadata": {"user": {"my key": 'it\'s "quoted" é'}}},
        {"defaults": False},
    ),
]


@pytest.mark.parametrize(("text", "query", "options"), PAIRS)
def test_text_and_json_give_the_same_ast(
    text: str, query: dict[str, Any], options: dict[str, Any]
) -> None:
    from_text = parse(text)
    assert from_json(query, **options) == from_text
    assert from_json(json.dumps(query), **options) == from_text
