"""Tasks: annotation and QA work on a dataset's files, their assignments, item statuses and
progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from graph.api.context import Info
from graph.api.scalars import JSON, LIST_DQL, Connection, instant, iso, to_connection
from graph.db.tables import Task as TaskRow
from graph.db.tables import TaskItem, TaskItemScore, TaskItemStatus
from graph.domain import assignments, consensus, item_statuses, live, task_analytics, tasks
from graph.domain.tasks import Progress

if TYPE_CHECKING:
    from graph.api.items import Item

__all__ = ["ItemTaskStatus", "MyAssignment", "Task", "TaskMutations", "TaskQueries"]

_SELECTION = strawberry.argument(
    description='The dataset\'s files to take: DQL text (`dir = "/day"`; `""` takes all), '
    "and/or a Dataloop JSON query in `filter`."
)


@strawberry.input(description="An assignee's share of a task's items, in percent.")
class WorkloadEntry:
    assignee: str = strawberry.field(description="The assignee's email; a project member.")
    load: float


@strawberry.input(description="Items wait unassigned; each assignee pulls batches on demand.")
class PullingInput:
    assignees: list[str]
    batch_size: int = strawberry.field(description="Items a pull gives (1 to 100).")
    max_batch_workload: int = strawberry.field(
        description="Items not done an assignee may hold (batchSize to 10 x batchSize)."
    )


@strawberry.input(description="A share of the items done by several annotators each, scored.")
class ConsensusInput:
    percentage: int = strawberry.field(description="Of the items, 1 to 100.")
    copies: int = strawberry.field(description="Annotators per such item, 2 to the assignees.")


@strawberry.type(description="How far a consensus item's annotators agree (0 to 1).")
class ItemAgreement:
    item_id: strawberry.ID
    overall: float
    label: float | None
    iou: float | None = strawberry.field(
        description="Mean geometric agreement of the matched shapes: IoU of areas (boxes, "
        "polygons, masks), distance similarity of points."
    )
    attributes: float | None

    @classmethod
    def of(cls, row: TaskItemScore) -> ItemAgreement:
        scores = row.scores
        return cls(
            item_id=strawberry.ID(row.item_id),
            overall=row.overall,
            label=scores["label"],
            iou=scores["iou"],
            attributes=scores["attributes"],
        )


@strawberry.type(description="An annotator's mean agreement with the others.")
class AnnotatorAgreement:
    assignee: str
    items: int
    overall: float | None


@strawberry.type(description="How many items have a status (null: none yet).")
class StatusCount:
    status: str | None
    count: int


@strawberry.type
class AssignmentProgress:
    assignment_id: strawberry.ID | None = strawberry.field(
        description="Null: items not given out yet (a pulling task's waiting items)."
    )
    total: int
    done: int
    by_status: list[StatusCount]


@strawberry.type(
    description="A task's items: in all, done (with a status), per status and per assignment."
)
class TaskProgress:
    task_id: strawberry.ID
    total: int
    done: int
    by_status: list[StatusCount]
    by_assignment: list[AssignmentProgress]

    @classmethod
    def of_event(cls, event: live.TaskProgress) -> TaskProgress:
        return cls.of(event.task_id, event.progress)

    @classmethod
    def of(cls, task_id: str, progress: Progress) -> TaskProgress:
        def counts(by_status: Any) -> list[StatusCount]:
            return [StatusCount(status=s, count=n) for s, n in sorted(by_status.items(), key=_key)]

        return cls(
            task_id=strawberry.ID(task_id),
            total=progress.total,
            done=progress.done,
            by_status=counts(progress.by_status),
            by_assignment=[
                AssignmentProgress(
                    assignment_id=None if a is None else strawberry.ID(a),
                    total=sum(by.values()),
                    done=sum(n for s, n in by.items() if s is not None),
                    by_status=counts(by),
                )
                for a, by in sorted(progress.by_assignment.items(), key=_key)
            ],
        )


def _key(entry: tuple[str | None, Any]) -> tuple[bool, str]:
    return entry[0] is not None, entry[0] or ""


@strawberry.type(description="How one assignee works in a task.")
class AnnotatorStats:
    assignee: str
    assigned: int = strawberry.field(description="Items its assignment holds.")
    done: int = strawberry.field(description="Of those, items with a status.")
    seconds_per_item: float | None = strawberry.field(
        description="Median time from one status it set to its next (pauses over an hour left "
        "out); null before two."
    )
    reworked: int = strawberry.field(description="Items of its assignment sent back to it.")
    rework_rate: float = strawberry.field(description="reworked / items it set a status on.")


@strawberry.type(description="One assignee's share of a task.")
class Assignment:
    id: strawberry.ID
    task_id: strawberry.ID
    assignee: str
    load: float | None = strawberry.field(description="Workload percentage; null when pulling.")
    created_at: str | None


@strawberry.type(description="An item's status in a task, before and after a change.")
class StatusChange:
    item_id: strawberry.ID
    previous: str | None
    status: str | None


@strawberry.type(description="An item's place in a task: its assignment and status there.")
class ItemTaskStatus:
    task_id: strawberry.ID
    assignment_id: strawberry.ID | None
    status: str | None
    status_by: str | None
    status_at: str | None
    issue: str | None = strawberry.field(description="Why a reviewer sent the item back.")

    @classmethod
    def of(cls, row: TaskItem) -> ItemTaskStatus:
        return cls(
            task_id=strawberry.ID(row.task_id),
            assignment_id=None if row.assignment_id is None else strawberry.ID(row.assignment_id),
            status=row.status,
            status_by=row.status_by,
            status_at=iso(row.status_at),
            issue=row.issue,
        )


@strawberry.type(description="One of the caller's assignments: its task and its share there.")
class MyAssignment:
    task: Task
    assignment_id: strawberry.ID
    held: int = strawberry.field(description="Items given to the caller in the task.")
    done: int = strawberry.field(description="Of those, items with a status.")

    @classmethod
    def of(cls, mine: assignments.Mine) -> MyAssignment:
        return cls(
            task=Task.of(mine.task),
            assignment_id=strawberry.ID(mine.assignment.id),
            held=mine.held,
            done=mine.done,
        )


@strawberry.type(description="One change of an item's status in a task (null status: cleared).")
class StatusRecord:
    status: str | None
    previous: str | None
    actor: str
    note: str | None
    assignment_id: strawberry.ID | None
    created_at: str | None

    @classmethod
    def of(cls, row: TaskItemStatus) -> StatusRecord:
        return cls(
            status=row.status,
            previous=row.previous,
            actor=row.actor,
            note=row.note,
            assignment_id=None if row.assignment_id is None else strawberry.ID(row.assignment_id),
            created_at=iso(row.created_at),
        )


@strawberry.type(
    description="Human work on a dataset's files: an annotation task, or a QA task reviewing "
    "what its parent completed."
)
class Task:
    id: strawberry.ID
    project_id: strawberry.ID
    dataset_id: strawberry.ID
    recipe_id: strawberry.ID | None
    parent_task_id: strawberry.ID | None
    name: str
    type: str = strawberry.field(description="annotation or qa.")
    status: str = strawberry.field(description="active, paused or completed.")
    owner: str
    due_date: str | None
    priority: int = strawberry.field(description="1 low, 2 medium, 3 high.")
    description: str | None
    statuses: list[str] = strawberry.field(description="The statuses its items may get.")
    dql: str | None
    filter: JSON | None
    distribution: str = strawberry.field(description="workload or pulling.")
    batch_size: int | None
    max_batch_workload: int | None
    consensus_percentage: int | None
    consensus_copies: int | None
    items_count: int
    creator: str
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, row: TaskRow) -> Task:
        return cls(
            id=strawberry.ID(row.id),
            project_id=strawberry.ID(row.project_id),
            dataset_id=strawberry.ID(row.dataset_id),
            recipe_id=None if row.recipe_id is None else strawberry.ID(row.recipe_id),
            parent_task_id=None
            if row.parent_task_id is None
            else strawberry.ID(row.parent_task_id),
            name=row.name,
            type=row.type,
            status=row.status,
            owner=row.owner,
            due_date=iso(row.due_date),
            priority=row.priority,
            description=row.description,
            statuses=list(row.statuses),
            dql=row.dql,
            filter=row.filter,
            distribution=row.distribution,
            batch_size=row.batch_size,
            max_batch_workload=row.max_batch_workload,
            consensus_percentage=row.consensus_percentage,
            consensus_copies=row.consensus_copies,
            items_count=row.items_count,
            creator=row.creator,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )

    @strawberry.field(description="Its items in all, per status and per assignment (one query).")
    async def progress(self, info: Info) -> TaskProgress:
        return TaskProgress.of(self.id, await info.context.loaders.task_progress.load(self.id))

    @strawberry.field
    async def assignments(self, info: Info) -> list[Assignment]:
        found = await info.context.loaders.assignments_of_task.load(self.id)
        return [
            Assignment(
                id=strawberry.ID(a.id),
                task_id=strawberry.ID(a.task_id),
                assignee=email,
                load=a.load,
                created_at=iso(a.created_at),
            )
            for a, email in found
        ]


def _workload(entries: Sequence[WorkloadEntry] | None) -> list[tuple[str, float]] | None:
    return None if entries is None else [(e.assignee, e.load) for e in entries]


def _pulling(spec: PullingInput | None) -> assignments.Pulling | None:
    if spec is None:
        return None
    return assignments.Pulling(spec.assignees, spec.batch_size, spec.max_batch_workload)


def _changes(found: Sequence[item_statuses.Change]) -> list[StatusChange]:
    return [
        StatusChange(item_id=strawberry.ID(c.item_id), previous=c.previous, status=c.status)
        for c in found
    ]


@strawberry.type
class TaskQueries:
    @strawberry.field
    async def task(self, info: Info, id: strawberry.ID) -> Task:
        ctx = info.context
        return Task.of(await tasks.get_task(ctx.platform, await ctx.actor(), id))

    @strawberry.field(
        description='The project\'s tasks matching a DQL query (`datasetId = "..." and status = '
        '"active"`), by its `order by`, else by name. An annotator sees the tasks it works on.'
    )
    async def tasks(
        self,
        info: Info,
        project_id: strawberry.ID,
        dql: Annotated[str | None, LIST_DQL] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Task]:
        ctx = info.context
        actor = await ctx.actor()
        page = await tasks.list_tasks(
            ctx.platform, actor, project_id, dql=dql, first=first, after=after
        )
        return to_connection(
            page, Task.of, lambda: tasks.count_tasks(ctx.platform, actor, project_id, dql=dql)
        )

    @strawberry.field(
        description="Per assignee: items given and done, pace, rework. Managers only."
    )
    async def task_analytics(self, info: Info, task_id: strawberry.ID) -> list[AnnotatorStats]:
        ctx = info.context
        found = await task_analytics.analytics(ctx.platform, await ctx.actor(), task_id)
        return [AnnotatorStats(**vars(stats)) for stats in found]

    @strawberry.field(
        description="The caller's work in a project: its assignments in tasks not completed, "
        "by priority then due date, with what it holds and has done."
    )
    async def my_assignments(self, info: Info, project_id: strawberry.ID) -> list[MyAssignment]:
        ctx = info.context
        found = await assignments.my_assignments(ctx.platform, await ctx.actor(), project_id)
        return [MyAssignment.of(m) for m in found]

    @strawberry.field(
        description="A consensus task's scored items (every copy done), lowest agreement "
        "first. Managers only."
    )
    async def consensus_scores(self, info: Info, task_id: strawberry.ID) -> list[ItemAgreement]:
        ctx = info.context
        rows = await consensus.item_scores(ctx.platform, await ctx.actor(), task_id)
        return [ItemAgreement.of(row) for row in rows]

    @strawberry.field(description="Each annotator's mean agreement in a consensus task.")
    async def annotator_agreement(
        self, info: Info, task_id: strawberry.ID
    ) -> list[AnnotatorAgreement]:
        ctx = info.context
        found = await consensus.annotator_scores(ctx.platform, await ctx.actor(), task_id)
        return [
            AnnotatorAgreement(assignee=a.assignee, items=a.items, overall=a.overall) for a in found
        ]

    @strawberry.field(description="Every status an item had in a task, oldest first.")
    async def item_status_history(
        self, info: Info, task_id: strawberry.ID, item_id: strawberry.ID
    ) -> list[StatusRecord]:
        ctx = info.context
        rows = await item_statuses.history(ctx.platform, await ctx.actor(), task_id, item_id)
        return [StatusRecord.of(row) for row in rows]


@strawberry.type
class TaskMutations:
    @strawberry.mutation(
        description="An annotation task over the dataset's files a query selects, given out by "
        "`workload` (percentages summing to 100) or pulled in batches (`pulling`). Statuses "
        "default to completed and discard, the recipe to the dataset's."
    )
    async def create_task(
        self,
        info: Info,
        dataset_id: strawberry.ID,
        name: str,
        dql: Annotated[str | None, _SELECTION] = None,
        filter: JSON | None = None,
        recipe_id: strawberry.ID | None = None,
        owner: str | None = None,
        due_date: str | None = None,
        priority: int = 2,
        description: str | None = None,
        statuses: list[str] | None = None,
        workload: list[WorkloadEntry] | None = None,
        pulling: PullingInput | None = None,
        consensus: ConsensusInput | None = None,
    ) -> Task:
        ctx = info.context
        row = await tasks.create_task(
            ctx.platform,
            await ctx.actor(),
            dataset_id,
            name,
            dql=dql,
            dataloop=filter,
            recipe_id=recipe_id,
            owner=owner,
            due_date=instant(due_date, "dueDate"),
            priority=priority,
            description=description,
            statuses=statuses,
            workload=_workload(workload),
            pulling=_pulling(pulling),
            consensus=None
            if consensus is None
            else assignments.Consensus(consensus.percentage, consensus.copies),
        )
        return Task.of(row)

    @strawberry.mutation(
        description="A QA task reviewing an annotation task: the items with a status there now "
        "and each one that gets one later. A reviewer's `discard` sends the item back to its "
        "annotator with the note as its issue. Named `<parent>_qa` unless `name` is given."
    )
    async def create_qa_task(
        self,
        info: Info,
        parent_task_id: strawberry.ID,
        name: str | None = None,
        owner: str | None = None,
        due_date: str | None = None,
        priority: int | None = None,
        description: str | None = None,
        statuses: list[str] | None = None,
        workload: list[WorkloadEntry] | None = None,
        pulling: PullingInput | None = None,
    ) -> Task:
        ctx = info.context
        row = await tasks.create_qa_task(
            ctx.platform,
            await ctx.actor(),
            parent_task_id,
            name=name,
            owner=owner,
            due_date=instant(due_date, "dueDate"),
            priority=priority,
            description=description,
            statuses=statuses,
            workload=_workload(workload),
            pulling=_pulling(pulling),
        )
        return Task.of(row)

    @strawberry.mutation(
        description="Change a task; only the arguments given are touched. `status`: active, "
        "paused or completed (a paused or completed task gives out no work)."
    )
    async def update_task(
        self,
        info: Info,
        id: strawberry.ID,
        name: str | None = strawberry.UNSET,
        owner: str | None = strawberry.UNSET,
        due_date: str | None = strawberry.UNSET,
        priority: int | None = strawberry.UNSET,
        description: str | None = strawberry.UNSET,
        statuses: list[str] | None = strawberry.UNSET,
        status: str | None = strawberry.UNSET,
    ) -> Task:
        given: dict[str, Any] = {
            "name": name,
            "owner": owner,
            "priority": priority,
            "description": description,
            "statuses": statuses,
            "status": status,
        }
        changes = {k: v for k, v in given.items() if v is not strawberry.UNSET}
        if due_date is not strawberry.UNSET:
            changes["due_date"] = instant(due_date, "dueDate")
        ctx = info.context
        return Task.of(await tasks.update_task(ctx.platform, await ctx.actor(), id, changes))

    @strawberry.mutation(
        description="Delete a task with its QA tasks; one with items given out and not done is "
        "refused (`CONFLICT`) unless `force`. Returns true."
    )
    async def delete_task(self, info: Info, id: strawberry.ID, force: bool = False) -> bool:
        ctx = info.context
        await tasks.delete_task(ctx.platform, await ctx.actor(), id, force=force)
        return True

    @strawberry.mutation(
        description="Add the dataset's files a query selects that the task does not have; they "
        "are given out as the task's distribution says. Returns how many were added."
    )
    async def add_items_to_task(
        self,
        info: Info,
        id: strawberry.ID,
        dql: Annotated[str | None, _SELECTION] = None,
        filter: JSON | None = None,
    ) -> int:
        ctx = info.context
        return await tasks.add_items(ctx.platform, await ctx.actor(), id, dql=dql, dataloop=filter)

    @strawberry.mutation(description="Take the items a query selects out of the task; how many.")
    async def remove_items_from_task(
        self,
        info: Info,
        id: strawberry.ID,
        dql: Annotated[str | None, _SELECTION] = None,
        filter: JSON | None = None,
    ) -> int:
        ctx = info.context
        return await tasks.remove_items(
            ctx.platform, await ctx.actor(), id, dql=dql, dataloop=filter
        )

    @strawberry.mutation(
        description="Give items a status in the task (one of its statuses); an annotator only "
        "items given to it. All or none; returns the changes made."
    )
    async def set_item_status(
        self,
        info: Info,
        task_id: strawberry.ID,
        item_ids: list[strawberry.ID],
        status: str,
        note: str | None = None,
    ) -> list[StatusChange]:
        ctx = info.context
        found = await item_statuses.set_status(
            ctx.platform, await ctx.actor(), task_id, item_ids, status, note=note
        )
        return _changes(found)

    @strawberry.mutation(description="Clear items' status in the task; as `setItemStatus`.")
    async def clear_item_status(
        self,
        info: Info,
        task_id: strawberry.ID,
        item_ids: list[strawberry.ID],
        note: str | None = None,
    ) -> list[StatusChange]:
        ctx = info.context
        found = await item_statuses.clear_status(
            ctx.platform, await ctx.actor(), task_id, item_ids, note=note
        )
        return _changes(found)

    @strawberry.mutation(
        description="The next batch of a pulling task's items for the caller, one of its "
        "assignees: up to batchSize, holding at most maxBatchWorkload not done. Empty when it "
        "holds that many or nothing is left."
    )
    async def pull_task_items(
        self, info: Info, task_id: strawberry.ID
    ) -> list[Annotated[Item, strawberry.lazy("graph.api.items")]]:
        from graph.api.items import Item

        ctx = info.context
        ids = await assignments.pull(ctx.platform, await ctx.actor(), task_id)
        rows = await ctx.loaders.item.load_many(ids)
        return [Item.of(row) for row in rows if row is not None]

    @strawberry.mutation(
        description="A new workload for a workload task: the items not done yet are split anew "
        "among the given assignees; done items stay with whoever did them."
    )
    async def redistribute_task(
        self, info: Info, id: strawberry.ID, workload: list[WorkloadEntry]
    ) -> Task:
        ctx = info.context
        actor = await ctx.actor()
        await assignments.redistribute(ctx.platform, actor, id, _workload(workload) or [])
        return Task.of(await tasks.get_task(ctx.platform, actor, id))

    @strawberry.mutation(
        description="Write the consensus annotations of a consensus task's scored items: the "
        "annotations of all annotators grouped into objects by IoU (points by distance); per "
        "object a majority drew, the most common label and attributes, and the mean box (mean "
        "point; else the shape agreeing best with the others), source `consensus`. A later call "
        "writes only what is new. Returns how many were written."
    )
    async def merge_consensus(self, info: Info, task_id: strawberry.ID) -> int:
        ctx = info.context
        return await consensus.merge(ctx.platform, await ctx.actor(), task_id)

    @strawberry.mutation(
        description="Give the items one assignee has not done to another (with its workload "
        "share); returns how many moved."
    )
    async def reassign_task_items(
        self, info: Info, id: strawberry.ID, from_assignee: str, to_assignee: str
    ) -> int:
        ctx = info.context
        return await assignments.reassign(
            ctx.platform, await ctx.actor(), id, from_assignee, to_assignee
        )
