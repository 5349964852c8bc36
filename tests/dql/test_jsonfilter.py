"""Dataloop (dtlpy) JSON queries -> AST: what the SDK and Dataloop's own apps send works unchanged,
and a malformed filter is a DQLError saying where in the JSON, never a KeyError or TypeError."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dql import (
    And,
    Compare,
    DQLError,
    DQLTypeError,
    Exists,
    Field,
    In,
    Like,
    Match,
    Not,
    Or,
    Order,
    Quantified,
    Query,
    from_json,
)

HIDDEN = Compare(Field(("hidden",)), "=", False)
FILE = Compare(Field(("type",)), "=", "file")
NOT_NOTE = Compare(Field(("type",)), "!=", "note")


def f(path: str) -> Field:
    return Field(tuple(path.split(".")))


def where(query: Any, **options: Any) -> Any:
    return from_json(query, defaults=False, **options).where


def test_active_learning_subset_filter() -> None:
    # the subset filters of Dataloop's active-learning pipeline template, as a JSON string
    text = json.dumps(
        {
            "filter": {
                "$and": [
                    {"hidden": False},
                    {"metadata": {"system": {"tags": {"train": True}}}},
                    {"type": "file"},
                ]
            }
        }
    )
    expected = And((HIDDEN, Compare(f("metadata.system.tags.train"), "=", True), FILE))
    assert from_json(text) == Query(expected)
    # hidden and type are already constrained, so the defaults add nothing
    assert from_json(text, defaults=False) == Query(expected)


def test_sdk_wire_format() -> None:
    # what Filters.prepare() emits, page and scope included
    query = {
        "resource": "items",
        "filter": {
            "$and": [
                {"hidden": False},
                {"type": "file"},
                {"dir": "/train"},
                {"metadata.user.score": {"$gt": 0.5}},
            ],
            "$or": [{"annotated": True}, {"metadata.system.mimetype": "image/*"}],
        },
        "sort": {"filename": "ascending", "createdAt": "descending"},
        "page": 0,
        "pageSize": 1000,
        "context": {"projectIds": ["p1"]},
        "systemSpace": True,
    }
    assert from_json(query) == Query(
        And(
            (
                HIDDEN,
                FILE,
                Compare(f("dir"), "=", "/train"),
                Compare(f("metadata.user.score"), ">", 0.5),
                Or(
                    (
                        Compare(f("annotated"), "=", True),
                        Like(f("metadata.system.mimetype"), "image/*"),
                    )
                ),
            )
        ),
        (Order(f("filename")), Order(f("createdAt"), descending=True)),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/dogs", Like(f("filename"), "/dogs/**")),
        ("/dogs/", Like(f("filename"), "/dogs/**")),
        ("/", Like(f("filename"), "/**")),
        ("/a.b/c", Like(f("filename"), "/a.b/c/**")),
        ("/dogs/rex.jpg", Compare(f("filename"), "=", "/dogs/rex.jpg")),
        ("/dogs/*.jpg", Like(f("filename"), "/dogs/*.jpg")),
        ("/dogs/**", Like(f("filename"), "/dogs/**")),
    ],
)
def test_filename_folder_rule(value: str, expected: object) -> None:
    assert where({"filename": value}) == expected
    assert where({"filename": {"$eq": value}}) == expected


def test_folder_rule_is_only_for_item_filenames() -> None:
    assert where({"dir": "/dogs"}) == Compare(f("dir"), "=", "/dogs")
    assert where({"filename": "/dogs"}, resource="annotations") == Compare(
        f("filename"), "=", "/dogs"
    )
    assert where({"filename": {"$ne": "/dogs"}}) == Compare(f("filename"), "!=", "/dogs")
    assert where({"filename": {"$in": ["/dogs"]}}) == In(f("filename"), ("/dogs",))


def test_wildcards_are_globs_under_equality() -> None:
    assert where({"metadata.system.mimetype": "video*"}) == Like(
        f("metadata.system.mimetype"), "video*"
    )
    assert where({"name": {"$eq": "*.png"}}) == Like(f("name"), "*.png")
    assert where({"name": {"$ne": "*.png"}}) == Not(Like(f("name"), "*.png"))
    # $in and comparisons take values literally
    assert where({"name": {"$in": ["*.png"]}}) == In(f("name"), ("*.png",))
    assert where({"name": {"$gt": "a*"}}) == Compare(f("name"), ">", "a*")


def test_operators() -> None:
    assert where({"width": {"$gt": 1, "$gte": 2, "$lt": 3, "$lte": 4, "$ne": 5, "$eq": 6}}) == And(
        (
            Compare(f("width"), ">", 1),
            Compare(f("width"), ">=", 2),
            Compare(f("width"), "<", 3),
            Compare(f("width"), "<=", 4),
            Compare(f("width"), "!=", 5),
            Compare(f("width"), "=", 6),
        )
    )
    assert where({"a": {"$in": [1, "x", None, True, 2.5]}}) == In(f("a"), (1, "x", None, True, 2.5))
    assert where({"a": {"$nin": []}}) == In(f("a"), (), negated=True)
    assert where({"a": {"$exists": True}}) == Exists(f("a"))
    assert where({"a": {"$exists": False}}) == Not(Exists(f("a")))
    assert where({"a": None}) == Compare(f("a"), "=", None)
    assert where({"a.b": {"$eq": None}}) == Compare(f("a.b"), "=", None)


def test_labels_through_a_join() -> None:
    query = {
        "filter": {"$and": [{"dir": "/train"}]},
        "join": {
            "on": {"resource": "annotations", "local": "itemId", "forigen": "id"},
            "filter": {"$and": [{"label": {"$in": ["cat", "dog"]}}, {"type": "box"}]},
        },
    }
    assert from_json(query) == Query(
        And(
            (
                HIDDEN,
                FILE,
                Compare(f("dir"), "=", "/train"),
                Quantified(
                    "annotations",
                    "any",
                    And((In(f("label"), ("cat", "dog")), Compare(f("type"), "=", "box"))),
                ),
            )
        )
    )
    # an empty join filter: items with at least one annotation
    assert where({"join": {"on": {"resource": "annotations"}}}) == Quantified("annotations", "any")


def test_annotations_joined_with_items() -> None:
    query = {
        "filter": {"label": "cat"},
        "join": {
            "on": {"resource": "items", "local": "id", "forigen": "itemId"},
            "filter": {"filename": "/train"},
        },
    }
    assert from_json(query, resource="annotations") == Query(
        And(
            (
                NOT_NOTE,
                Compare(f("label"), "=", "cat"),
                Quantified("item", "any", Like(f("filename"), "/train/**")),
            )
        )
    )


def test_match_on_task_refs() -> None:
    refs = f("metadata.system.refs")
    assert where(
        {
            "metadata.system.refs": {
                "$match": {"id": "t1", "type": "task", "metadata": {"status": {"$exists": True}}}
            }
        }
    ) == Match(
        refs,
        And(
            (
                Compare(f("id"), "=", "t1"),
                Compare(f("type"), "=", "task"),
                Exists(f("metadata.status")),
            )
        ),
    )
    # element paths are relative, and no item rule applies inside ($match filename stays equality)
    assert where({"refs": {"$match": {"filename": "/x"}}}) == Match(
        f("refs"), Compare(f("filename"), "=", "/x")
    )
    assert where({"metadata.system.refs.id": {"$in": ["t1"]}}) == In(
        f("metadata.system.refs.id"), ("t1",)
    )


def test_logic_nesting_and_flattening() -> None:
    a, b, c, d = (Compare(f(name), "=", 1) for name in "abcd")
    assert where({"$and": [{"a": 1}, {"$and": [{"b": 1}, {"c": 1}]}]}) == And((a, b, c))
    assert where({"$or": [{"a": 1}, {"$or": [{"b": 1}, {"c": 1}]}]}) == Or((a, b, c))
    assert where({"$or": [{"a": 1, "b": 1}, {"c": 1}]}) == Or((And((a, b)), c))
    assert where({"$and": [{"a": 1}], "$or": [{"b": 1}, {"c": 1}], "d": 1}) == And(
        (a, Or((b, c)), d)
    )
    assert where({"$or": [{"a": 1}]}) == a
    assert where({"$and": []}) is None
    assert where({}) is None
    # an empty alternative matches everything, so the whole $or does
    assert where({"$or": [{"a": 1}, {}], "b": 1}) == b
    # several keys under a field object flatten to several conditions
    assert where({"metadata": {"user": {"a": 1, "b": {"$gt": 2}}}}) == And(
        (Compare(f("metadata.user.a"), "=", 1), Compare(f("metadata.user.b"), ">", 2))
    )


def test_sort() -> None:
    assert from_json({"sort": {"a": "asc", "b.c": "DESC", "d": 1, "e": -1, "f": "Ascending"}}) == (
        Query(
            And((HIDDEN, FILE)),
            (
                Order(f("a")),
                Order(f("b.c"), True),
                Order(f("d")),
                Order(f("e"), True),
                Order(f("f")),
            ),
        )
    )
    assert from_json({"sort": {}}, defaults=False) == Query()


def test_defaults() -> None:
    assert from_json({}) == Query(And((HIDDEN, FILE)))
    assert from_json({"filter": {}}, defaults=False) == Query()
    # a user condition on a default's field replaces that default (Dataloop's unique fields)
    assert from_json({"hidden": True}).where == And((FILE, Compare(f("hidden"), "=", True)))
    assert from_json({"type": {"$in": ["file", "dir"]}}).where == And(
        (HIDDEN, In(f("type"), ("file", "dir")))
    )
    assert from_json({"$and": [{"hidden": {"$exists": False}}]}).where == And(
        (FILE, Not(Exists(f("hidden"))))
    )
    # ... but only at the top level: inside $or it is one alternative among others
    assert from_json({"$or": [{"hidden": True}, {"dir": "/a"}]}).where == And(
        (HIDDEN, FILE, Or((Compare(f("hidden"), "=", True), Compare(f("dir"), "=", "/a"))))
    )
    assert from_json({"label": "cat"}, resource="annotations").where == And(
        (NOT_NOTE, Compare(f("label"), "=", "cat"))
    )
    assert from_json({"type": "note"}, resource="annotations").where == Compare(
        f("type"), "=", "note"
    )
    assert from_json({"name": "x"}, resource="datasets").where == Compare(f("name"), "=", "x")


def test_python_values_pass_through() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert where({"createdAt": {"$gte": moment}}) == Compare(f("createdAt"), ">=", moment)
    assert where({"a": {"$in": (1, 2)}}) == In(f("a"), (1, 2))


def test_bare_filter_and_whole_query_are_both_accepted() -> None:
    assert from_json({"$and": [{"a": 1}]}, defaults=False) == from_json(
        {"filter": {"$and": [{"a": 1}]}}, defaults=False
    )
    assert from_json({"page": 3, "pageSize": 10}, defaults=False) == Query()


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ([{"a": 1}], DQLError, "a Dataloop query is a JSON object, not a list"),
        ('"just text"', DQLError, "a Dataloop query is a JSON object, not a string"),
        ("{'a': 1}", DQLError, "not valid JSON"),
        ("", DQLError, "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, DQLError, "the query nests deeper than 64 levels"),
        ({"filter": [{"a": 1}]}, DQLError, "filter: expected a filter object, found a list"),
        ({"filter": "a = 1"}, DQLError, "filter: expected a filter object, found a string"),
        (
            {"width": {"$regex": "^1"}},
            DQLError,
            "filter.width.$regex: unknown operator '$regex'; use one of $eq $ne",
        ),
        ({"$nor": [{"a": 1}]}, DQLError, "filter: unknown operator '$nor' here"),
        (
            {"$and": [{"a": 1}, {"b": {"$in": "x"}}]},
            DQLTypeError,
            "filter.$and[1].b.$in: $in takes a list of values, found a string",
        ),
        ({"b": {"$nin": {"x": 1}}}, DQLTypeError, "filter.b.$nin: $nin takes a list"),
        ({"b": {"$in": [[1]]}}, DQLTypeError, "filter.b.$in[0]: expected a string, number"),
        ({"b": {"$exists": 1}}, DQLTypeError, "filter.b.$exists: $exists takes true or false"),
        ({"b": {"$match": [1]}}, DQLError, "filter.b.$match: expected a filter object, found a list"),
        ({"b": {"$match": {}}}, DQLError, "filter.b.$match: $match needs at least one condition"),
        ({"b": {"$gt": 1, "c": 2}}, DQLError, "filter.b: an object mixes operators"),
        ({"b": {}}, DQLError, "filter.b: an empty object is not a condition"),
        ({"b": [1, 2]}, DQLTypeError, "a list is only taken by $in and $nin"),
        ({"b": {"$gt": {"x": 1}}}, DQLTypeError, "filter.b.$gt: expected a string, number"),
        ({"$and": {"a": 1}}, DQLError, "filter.$and: expected a list of filter objects"),
        ({"$or": []}, DQLError, "filter.$or: an empty $or would match nothing"),
        ({"$and": [1]}, DQLError, "filter.$and[0]: expected a filter object, found a number"),
        ({"a..b": 1}, DQLError, "filter: 'a..b' is not a field path"),
        ({"": 1}, DQLError, "filter: '' is not a field path"),
        ({"a.$b": 1}, DQLError, "a field name cannot start with '$'"),
        ({1: 2}, DQLError, "filter: a field name is a string, not a number"),
        ({"a": 2**63}, DQLTypeError, "filter.a: the number 9223372036854775808 is out of range"),
        ('{"a": NaN}', DQLTypeError, "filter.a: the number nan is out of range"),
        ('{"a": 1e999}', DQLTypeError, "filter.a: the number inf is out of range"),
        ('{"a": "\\ud800"}', DQLError, "filter.a: the text holds half a UTF-16 surrogate pair"),
        ({"filter": {}, "update": {"a": 1}}, DQLError, "unknown key 'update' in the query"),
        ({"filter": {}, "intersect": {}}, DQLError, "unknown key 'intersect' in the query"),
        ({"join": [1]}, DQLError, "join: expected an object with on and filter"),
        ({"join": {"on": {"resource": "tasks"}}}, DQLError, "join.on.resource: items can be joined with 'annotations', not 'tasks'"),
        ({"join": {}}, DQLError, "join.on.resource"),
        ({"join": {"on": {"resource": "annotations"}, "filter": {"a": {"$x": 1}}}}, DQLError, "join.filter.a.$x: unknown operator"),
        ({"sort": ["a"]}, DQLError, "sort: expected an object of field: direction"),
        ({"sort": {"a": "up"}}, DQLError, "sort.a: the direction is ascending or descending"),
        ({"sort": {"a": True}}, DQLError, "sort.a: the direction"),
        ({"sort": {"a..b": 1}}, DQLError, "sort.a..b: 'a..b' is not a field path"),
    ],
)  # fmt: skip
def test_errors_say_where_and_what(query: Any, error: type[DQLError], message: str) -> None:
    with pytest.raises(error) as caught:
        from_json(query)
    assert message in caught.value.message


def test_type_errors_name_the_field() -> None:
    with pytest.raises(DQLTypeError) as caught:
        from_json({"metadata": {"user": {"tags": {"$in": 3}}}})
    assert caught.value.field == "metadata.user.tags"


def test_deep_nesting_is_a_clean_error() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(2000):
        deep = {"$and": [deep]}
    with pytest.raises(DQLError, match="nests deeper than 64 levels"):
        from_json(deep)
    text = '{"filter": ' + '{"$and": [' * 2000 + '{"a": 1}' + "]}" * 2000 + "}"
    with pytest.raises(DQLError, match="nests deeper than 64 levels"):
        from_json(text)
    nested: dict[str, Any] = {"x": 1}
    for _ in range(2000):
        nested = {"m": nested}
    with pytest.raises(DQLError, match="nests deeper than 64 levels"):
        from_json(nested)
    ok: dict[str, Any] = {"a": 1}
    for _ in range(60):
        ok = {"$or": [ok, {"b": 1}]}
    assert from_json(ok, defaults=False).where is not None


_KEYS = st.sampled_from(
    ["$and", "$or", "$eq", "$ne", "$gt", "$in", "$nin", "$exists", "$match", "$regex", "a", "b.c", "", "filter", "join", "sort", "on", "resource", "annotations"]
)  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(_JSON, st.sampled_from(["items", "annotations"]))
def test_any_json_is_a_query_or_a_dql_error(query: Any, resource: str) -> None:
    try:
        result = from_json(query, resource=resource)
    except DQLError as error:
        assert error.message
    else:
        assert isinstance(result, Query)


def test_an_empty_array_means_no_element() -> None:
    query = from_json({"filter": {"metadata.system.refs": []}}, defaults=False)
    assert query.where == Not(Match(Field(("metadata", "system", "refs")), None))
