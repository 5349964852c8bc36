"""Helpers to call the GraphQL API over HTTP in tests."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["GraphQLFailed", "finished", "gql", "gql_errors"]


class GraphQLFailed(AssertionError):
    pass


async def _post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None, **kw: Any
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, **kw
    )
    assert response.status_code == 200, response.text
    return response.json()


async def gql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    """The ``data`` of a request that must succeed."""
    body = await _post(client, query, variables, **kw)
    if body.get("errors"):
        raise GraphQLFailed(body["errors"])
    return body["data"]


async def gql_errors(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, **kw: Any
) -> list[dict[str, Any]]:
    """The errors of a request that must fail."""
    body = await _post(client, query, variables, **kw)
    assert body.get("errors"), f"expected errors, got {body}"
    return body["errors"]


async def finished(client: Any, settings: Any, execution: dict[str, Any]) -> dict[str, Any]:
    """Run what is queued with a real worker; the execution's end: status, output, error."""
    from tests.conftest import burst

    burst(settings)
    query = "query($id: ID!) { execution(id: $id) { status output error } }"
    return (await gql(client, query, {"id": execution["id"]}))["execution"]  # type: ignore[no-any-return]
