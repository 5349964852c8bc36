"""A GraphQL page of items with their annotations costs a fixed, small number of SQL statements."""

from __future__ import annotations

from typing import Any

import pytest

from graph.domain import annotations, datasets, links
from graph.domain.annotations import AnnotationSpec
from tests.asserts import count_statements
from tests.graphql import gql

PAGE = """
query($d: ID!, $first: Int, $after: String) {
  items(datasetId: $d, first: $first, after: $after) {
    edges { node { id name annotations { id label coordinates } } }
    pageInfo { endCursor hasNextPage }
  }
}
"""


@pytest.fixture
async def dataset_id(platform, owner, project) -> str:
    """150 linked items with 5 box annotations each."""
    actor = owner[0]
    dataset = await datasets.create_dataset(platform, actor, project.id, "counted")
    report = await links.add_links(
        platform,
        actor,
        dataset.id,
        [links.LinkSpec(f"https://example.com/{i:03d}.jpg") for i in range(150)],
    )
    for index, item_id in enumerate(report.item_ids):
        await annotations.create_annotations(
            platform,
            actor,
            item_id,
            [
                AnnotationSpec(
                    type="box",
                    label=f"label-{k}",
                    coordinates=[{"x": index, "y": k}, {"x": index + 10, "y": k + 10}],
                )
                for k in range(5)
            ],
        )
    return dataset.id


async def _page(client, platform, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with count_statements(platform.db.engine) as log:
        data = await gql(client, PAGE, variables)
    # the counter sees the work: the annotations come in one statement for the whole page
    assert sum("FROM annotations" in s for s in log.statements) == 1, log
    return data["items"], len(log)


async def test_a_page_of_100_items_with_annotations_costs_at_most_4_statements(
    client, platform, dataset_id
) -> None:
    page, statements = await _page(client, platform, {"d": dataset_id, "first": 100})
    # the token, the dataset (with the caller's role), the items, their annotations
    assert statements <= 4
    nodes = [edge["node"] for edge in page["edges"]]
    assert [n["name"] for n in nodes] == [f"{i:03d}.jpg" for i in range(100)]
    assert all(len(n["annotations"]) == 5 for n in nodes)
    assert nodes[7]["annotations"][2] == {
        "id": nodes[7]["annotations"][2]["id"],
        "label": "label-2",
        "coordinates": [{"x": 7, "y": 2}, {"x": 17, "y": 12}],
    }
    assert page["pageInfo"]["hasNextPage"] is True

    rest, statements = await _page(
        client, platform, {"d": dataset_id, "first": 100, "after": page["pageInfo"]["endCursor"]}
    )
    assert statements <= 4
    assert [e["node"]["name"] for e in rest["edges"]] == [f"{i:03d}.jpg" for i in range(100, 150)]
    assert all(len(e["node"]["annotations"]) == 5 for e in rest["edges"])
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_the_statement_count_does_not_grow_with_the_page_size(
    client, platform, dataset_id
) -> None:
    small, few = await _page(client, platform, {"d": dataset_id, "first": 10})
    large, many = await _page(client, platform, {"d": dataset_id, "first": 100})
    assert (len(small["edges"]), len(large["edges"])) == (10, 100)
    assert few == many <= 4
