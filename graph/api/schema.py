"""The GraphQL schema: every module's queries and mutations, with limits and typed errors."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult

from graph.api.annotations import AnnotationMutations, AnnotationQueries
from graph.api.bulk import BulkMutations
from graph.api.datasets import DatasetMutations, DatasetQueries
from graph.api.errors import typed_errors
from graph.api.executions import ExecutionMutations, ExecutionQueries
from graph.api.exports import ExportMutations, ExportQueries
from graph.api.fanout import PerResultHooks, SharedEvents
from graph.api.imports import ImportMutations
from graph.api.indexes import IndexMutations, IndexQueries
from graph.api.items import ItemMutations, ItemQueries
from graph.api.links import LinkMutations
from graph.api.live import LiveSubscriptions
from graph.api.ontologies import OntologyMutations, OntologyQueries
from graph.api.packages import PackageMutations, PackageQueries
from graph.api.projects import ProjectMutations, ProjectQueries
from graph.api.recipes import RecipeMutations, RecipeQueries
from graph.api.saved_queries import SavedQueryMutations, SavedQueryQueries
from graph.api.services import ServiceMutations, ServiceQueries
from graph.api.slots import SlotMutations, SlotQueries
from graph.api.storage import StorageMutations, StorageQueries
from graph.api.sync import SyncMutations
from graph.api.tasks import TaskMutations, TaskQueries
from graph.api.triggers import TriggerMutations, TriggerQueries
from graph.api.uploads import UploadMutations
from graph.api.versioning import VersioningMutations, VersioningQueries
from graph.domain.errors import DomainError

__all__ = ["LIMITS", "schema"]

LIMITS = {"depth": 12, "aliases": 30, "tokens": 5000}

Query = merge_types(
    "Query",
    (
        ProjectQueries,
        DatasetQueries,
        ItemQueries,
        AnnotationQueries,
        OntologyQueries,
        RecipeQueries,
        TaskQueries,
        StorageQueries,
        VersioningQueries,
        IndexQueries,
        SavedQueryQueries,
        PackageQueries,
        ServiceQueries,
        SlotQueries,
        ExecutionQueries,
        TriggerQueries,
        ExportQueries,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        ProjectMutations,
        DatasetMutations,
        ItemMutations,
        AnnotationMutations,
        OntologyMutations,
        RecipeMutations,
        TaskMutations,
        StorageMutations,
        SyncMutations,
        ExportMutations,
        ImportMutations,
        UploadMutations,
        LinkMutations,
        VersioningMutations,
        IndexMutations,
        BulkMutations,
        SavedQueryMutations,
        PackageMutations,
        ServiceMutations,
        SlotMutations,
        ExecutionMutations,
        TriggerMutations,
    ),
)


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log only what went wrong on our side; users' mistakes are answered, not logged."""
        unexpected = [
            e
            for e in errors
            if e.original_error is not None
            and not isinstance(e.original_error, DomainError | GraphQLError)
        ]
        super().process_errors(unexpected, execution_context)

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return PerResultHooks(execution_context, extensions)

    async def stream(self, *args: Any, **kwargs: Any) -> StreamResult:
        """Results over a websocket, with errors typed as the HTTP view types them."""
        results = await super().stream(*args, **kwargs)

        async def typed() -> AsyncGenerator[Any, None]:
            async with aclosing(results):
                async for result in results:
                    yield typed_errors(result) if isinstance(result, ExecutionResult) else result

        return typed()


schema = _Schema(
    query=Query,
    mutation=Mutation,
    subscription=LiveSubscriptions,
    execution_context_class=SharedEvents,
    extensions=[
        lambda: QueryDepthLimiter(max_depth=LIMITS["depth"]),
        lambda: MaxAliasesLimiter(max_alias_count=LIMITS["aliases"]),
        lambda: MaxTokensLimiter(max_token_count=LIMITS["tokens"]),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ],
)
