"""The database schema as typed SQLAlchemy tables, one section per entity.

Field names follow Dataloop's wire names in snake_case. Everything a query filters or sorts on is a
real column; free-form data (``metadata``, coordinates) is JSON (JSONB on PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from graph.db.ids import new_id

__all__ = [
    "Annotation",
    "ApiToken",
    "Assignment",
    "Base",
    "Blob",
    "Dataset",
    "Driver",
    "Event",
    "Execution",
    "ExecutionLog",
    "Integration",
    "Item",
    "LabelCount",
    "Lease",
    "Member",
    "MetadataIndex",
    "Ontology",
    "Package",
    "PackageRevision",
    "Project",
    "Recipe",
    "SavedQuery",
    "Service",
    "Task",
    "TaskCount",
    "TaskItem",
    "TaskItemScore",
    "TaskItemStatus",
    "Trigger",
    "User",
    "utcnow",
]

Json = JSON().with_variant(JSONB(), "postgresql")
Id = String(24)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: Json, datetime: DateTime(timezone=True)}


class _Entity:
    id: Mapped[str] = mapped_column(Id, primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- access ---------------------------------------------------------------------------------------


class User(_Entity, Base):
    __tablename__ = "users"
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(default=False)


class ApiToken(_Entity, Base):
    __tablename__ = "api_tokens"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # sha256 of the token: tokens are 32 random bytes, so a fast hash is enough and lookups are exact
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked: Mapped[bool] = mapped_column(default=False)


class Project(_Entity, Base):
    __tablename__ = "projects"
    name: Mapped[str] = mapped_column(String(200), unique=True)
    creator: Mapped[str] = mapped_column(String(320), default="")


class Member(Base):
    __tablename__ = "members"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- storage --------------------------------------------------------------------------------------


class Integration(_Entity, Base):
    """Credentials for external storage. ``secret`` is read by drivers only, never by the API."""

    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    secret: Mapped[dict[str, Any]] = mapped_column(default=dict)
    creator: Mapped[str] = mapped_column(String(320), default="")


class Driver(_Entity, Base):
    """A storage location (a bucket and prefix, or a local folder) bound to datasets."""

    __tablename__ = "drivers"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    integration_id: Mapped[str | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="RESTRICT"), default=None
    )
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    creator: Mapped[str] = mapped_column(String(320), default="")


class Blob(_Entity, Base):
    """Stored bytes. Platform-stored blobs are content addressed (``driver_id`` is null, ``key`` is
    derived from ``sha256``) and shared by every item with that content, clones included."""

    __tablename__ = "blobs"
    __table_args__ = (
        UniqueConstraint("driver_id", "key"),
        # NULLs are distinct in the constraint above, so platform blobs need their own unique index
        Index(
            "uq_blobs_platform_key",
            "key",
            unique=True,
            sqlite_where=text("driver_id IS NULL"),
            postgresql_where=text("driver_id IS NULL"),
        ),
    )
    driver_id: Mapped[str | None] = mapped_column(
        ForeignKey("drivers.id", ondelete="CASCADE"), default=None
    )
    key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    etag: Mapped[str | None] = mapped_column(String(200), default=None)


# --- data -----------------------------------------------------------------------------------------


class Dataset(_Entity, Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    driver_id: Mapped[str | None] = mapped_column(
        ForeignKey("drivers.id", ondelete="RESTRICT"), default=None
    )
    readonly: Mapped[bool] = mapped_column(default=False)
    src_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), default=None, index=True
    )
    items_count: Mapped[int] = mapped_column(BigInteger, default=0)
    annotations_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_synced_at: Mapped[datetime | None] = mapped_column(default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # the recipe annotations written to the dataset are checked against; none accepts any label.
    # No ON DELETE: SQLite reflects no options of the column's inline key (migration 0003), so
    # deleting a recipe in use detaches its datasets first (graph/domain/recipes.py)
    recipe_id: Mapped[str | None] = mapped_column(
        ForeignKey("recipes.id"), default=None, index=True
    )
    creator: Mapped[str] = mapped_column(String(320), default="")


class Item(_Entity, Base):
    """A file, a linked URL or a folder (``type = "dir"``) in a dataset."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("dataset_id", "filename"),
        Index("ix_items_dataset_id_dir_name", "dataset_id", "dir", "name"),
        # a listing's default order (folders first, then by path): a first page, or a keyset
        # page at any depth, reads 100 entries instead of sorting the dataset (dql_1m bench)
        Index("ix_items_dataset_id_type_filename_id", "dataset_id", "type", "filename", "id"),
    )
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    dir: Mapped[str] = mapped_column(String(1024))
    name: Mapped[str] = mapped_column(String(512))
    filename: Mapped[str] = mapped_column(String(1536))
    type: Mapped[str] = mapped_column(String(16), default="file")
    hidden: Mapped[bool] = mapped_column(default=False)
    mimetype: Mapped[str | None] = mapped_column(String(200), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    blob_id: Mapped[str | None] = mapped_column(
        ForeignKey("blobs.id", ondelete="RESTRICT"), default=None, index=True
    )
    thumbnail_blob_id: Mapped[str | None] = mapped_column(
        ForeignKey("blobs.id", ondelete="RESTRICT"), default=None, index=True
    )
    url: Mapped[str | None] = mapped_column(Text, default=None)
    annotated: Mapped[bool] = mapped_column(default=False)
    annotations_count: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    src_item_id: Mapped[str | None] = mapped_column(
        ForeignKey("items.id", ondelete="SET NULL"), default=None, index=True
    )
    creator: Mapped[str] = mapped_column(String(320), default="")


class Annotation(_Entity, Base):
    __tablename__ = "annotations"
    # item_id last: "items with annotations of label X" reads this index alone (dql_1m bench)
    # its three keys are triggers on PostgreSQL (graph/db/trigger_keys.py)
    __table_args__ = (
        Index("ix_annotations_dataset_id_label_item_id", "dataset_id", "label", "item_id"),
        # only the rows with a parent (a pose's points): a lookup by parent never asks for NULL
        Index(
            "ix_annotations_parent_id",
            "parent_id",
            postgresql_where=text("parent_id IS NOT NULL"),
            sqlite_where=text("parent_id IS NOT NULL"),
        ),
    )
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(512), default=None)
    coordinates: Mapped[Any] = mapped_column(Json, default=None)
    attributes: Mapped[Any] = mapped_column(Json, default=None)
    object_id: Mapped[str | None] = mapped_column(String(64), default=None)
    frame: Mapped[int | None] = mapped_column(Integer, default=None)
    end_frame: Mapped[int | None] = mapped_column(Integer, default=None)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), default=None
    )
    status: Mapped[str | None] = mapped_column(String(32), default=None)
    source: Mapped[str] = mapped_column(String(32), default="api")
    creator: Mapped[str] = mapped_column(String(320), default="")
    model_id: Mapped[str | None] = mapped_column(String(24), default=None)
    model_name: Mapped[str | None] = mapped_column(String(200), default=None)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    execution_id: Mapped[str | None] = mapped_column(String(24), default=None)
    # "<execution id>:<n>" for the n-th annotation an execution writes: a retried execution
    # writes the same keys, so its annotations are not duplicated
    effect_key: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    src_annotation_id: Mapped[str | None] = mapped_column(String(24), default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class LabelCount(Base):
    """How many annotations of a dataset carry each label, kept by database triggers on
    ``annotations`` (migration 0002), so a label facet of a whole dataset reads a few rows.

    The true count of a label is the sum of its rows. SQLite's row triggers keep one row per
    label; PostgreSQL's statement triggers append one row per label a statement changed (no row is
    updated in place, so concurrent writers never wait on each other or deadlock) and the
    scheduler folds them (graph/domain/label_counts.py). No foreign key: a dataset's rows go with
    its annotations, whose delete triggers write the negative counts."""

    __tablename__ = "label_counts"
    __table_args__ = (Index("ix_label_counts_dataset_id_label", "dataset_id", "label"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    dataset_id: Mapped[str] = mapped_column(Id)
    label: Mapped[str | None] = mapped_column(String(512), default=None)
    n: Mapped[int] = mapped_column(BigInteger)


class MetadataIndex(_Entity, Base):
    """A declared index on a JSON path of a resource (``items`` ``metadata.user.camera``).

    Platform-wide, as the SQL indexes it names are on the whole table (composite with
    ``dataset_id``), built on the expressions DQL compiles the path to: graph/domain/indexes.py.
    """

    __tablename__ = "metadata_indexes"
    __table_args__ = (UniqueConstraint("resource", "path"),)
    resource: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(512))
    # what each SQL index serves ("values", "numbers") -> its name
    sql_indexes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    creator: Mapped[str] = mapped_column(String(320), default="")


# --- labels -------------------------------------------------------------------------------------


class Ontology(_Entity, Base):
    """A project's labels and attributes (v2), in Dataloop's wire form.

    ``labels`` is the tree ``[{tag, displayLabel, color, children: [...]}]`` (a node's ``tag`` is
    its own name; annotations carry dot paths ``animal.dog``); ``attributes`` the definitions
    ``[{key, title, type, scope, optional, values?, multi?, range?}]``. Both are read whole and
    written whole: graph/domain/labels.py and attributes.py check them."""

    __tablename__ = "ontologies"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    labels: Mapped[Any] = mapped_column(Json, default=list)
    attributes: Mapped[Any] = mapped_column(Json, default=list)
    creator: Mapped[str] = mapped_column(String(320), default="")


class Recipe(_Entity, Base):
    """How a dataset is annotated: its ontology, instructions for annotators and the custom
    statuses tasks may set (``["expert review"]``)."""

    __tablename__ = "recipes"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # no ON DELETE: an ontology in use is refused by the domain; a project's delete takes both
    ontology_id: Mapped[str] = mapped_column(ForeignKey("ontologies.id"), index=True)
    instructions: Mapped[str | None] = mapped_column(Text, default=None)
    statuses: Mapped[Any] = mapped_column(Json, default=list)
    creator: Mapped[str] = mapped_column(String(320), default="")


# --- work -----------------------------------------------------------------------------------------


class Task(_Entity, Base):
    """Human work on a dataset's items: an annotation task, or a QA task reviewing what its
    parent task completed. Items come in by DQL (graph/domain/tasks.py) and are given out by
    workload percentages or pulled in batches (graph/domain/assignments.py)."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    # no ON DELETE (SQLite reflects none): deleting a recipe detaches its tasks in the domain
    recipe_id: Mapped[str | None] = mapped_column(
        ForeignKey("recipes.id"), default=None, index=True
    )
    parent_task_id: Mapped[str | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), default=None, index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16), default="annotation")  # annotation | qa
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|paused|completed
    owner: Mapped[str] = mapped_column(String(320), default="")
    due_date: Mapped[datetime | None] = mapped_column(default=None)
    priority: Mapped[int] = mapped_column(default=2)  # 1 low, 2 medium, 3 high
    description: Mapped[str | None] = mapped_column(Text, default=None)
    statuses: Mapped[Any] = mapped_column(Json, default=list)  # the statuses items may get
    dql: Mapped[str | None] = mapped_column(Text, default=None)  # the selection, as given
    filter: Mapped[Any] = mapped_column(Json, default=None)
    distribution: Mapped[str] = mapped_column(String(16), default="workload")  # or pulling
    batch_size: Mapped[int | None] = mapped_column(default=None)
    max_batch_workload: Mapped[int | None] = mapped_column(default=None)
    consensus_percentage: Mapped[int | None] = mapped_column(default=None)
    consensus_copies: Mapped[int | None] = mapped_column(default=None)
    items_count: Mapped[int] = mapped_column(default=0)
    creator: Mapped[str] = mapped_column(String(320), default="")


class Assignment(_Entity, Base):
    """One assignee's share of a task: a workload percentage, or (pulling) what it pulled."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("task_id", "assignee_id"),)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    assignee_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    load: Mapped[float | None] = mapped_column(Float, default=None)


class TaskItem(Base):
    """An item in a task (``copy`` > 0: another annotator's copy of a consensus item), the
    assignment it is given to (none: waiting to be pulled) and its status in the task. Its
    three keys are triggers on PostgreSQL (:mod:`graph.db.trigger_keys`)."""

    __tablename__ = "task_items"
    __table_args__ = (
        # an assignment's queue and its counts per status
        Index("ix_task_items_task_id_assignment_id_status", "task_id", "assignment_id", "status"),
        # the task's counts per status, and the items a QA task reviews
        Index("ix_task_items_task_id_status", "task_id", "status"),
        # the queue a pull takes from, in order: free items only, so a pull reads just the
        # batch it takes however much of the task is given out
        Index(
            "ix_task_items_free",
            "task_id",
            "item_id",
            "copy",
            sqlite_where=text("assignment_id IS NULL AND status IS NULL"),
            postgresql_where=text("assignment_id IS NULL AND status IS NULL"),
        ),
    )
    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    copy: Mapped[int] = mapped_column(primary_key=True, default=0)
    assignment_id: Mapped[str | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="SET NULL"), default=None
    )
    status: Mapped[str | None] = mapped_column(String(100), default=None)
    status_by: Mapped[str | None] = mapped_column(String(320), default=None)
    status_at: Mapped[datetime | None] = mapped_column(default=None)
    assigned_at: Mapped[datetime | None] = mapped_column(default=None)
    # why a reviewer sent the item back (rework); cleared when it gets a status again
    issue: Mapped[str | None] = mapped_column(Text, default=None)


class TaskCount(Base):
    """A task's ``task_items`` rows with one assignment and status, so that its progress reads
    these few rows however many items it has (graph/domain/task_counts.py keeps them, in the
    transaction of each change to ``task_items``). ``""`` stands for no assignment or no status
    (the key takes no NULL). The row with neither holds all of the task's rows, not its free
    ones (the rest once the others are taken off): a pull, which takes free rows, then writes
    only its puller's row, and concurrent pulls never wait for one another on a counter."""

    __tablename__ = "task_counts"
    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    # no foreign key: "" is no assignment; a task's assignments go only with the task
    assignment_id: Mapped[str] = mapped_column(Id, primary_key=True)
    status: Mapped[str] = mapped_column(String(100), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class TaskItemScore(Base):
    """How far the annotators of a consensus item agree, once every copy of it has a status
    (graph/domain/consensus.py): the item's scores and each pair's."""

    __tablename__ = "task_item_scores"
    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    overall: Mapped[float] = mapped_column(Float)
    scores: Mapped[Any] = mapped_column(Json)  # {"label", "iou", "attributes", "pairs": [...]}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskItemStatus(Base):
    """The history of an item's status in a task: who set or cleared it, when, from what."""

    __tablename__ = "task_item_statuses"
    __table_args__ = (Index("ix_task_item_statuses_task_id_item_id", "task_id", "item_id"),)
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    copy: Mapped[int] = mapped_column(default=0)
    assignment_id: Mapped[str | None] = mapped_column(String(24), default=None)
    status: Mapped[str | None] = mapped_column(String(100), default=None)  # None: cleared
    previous: Mapped[str | None] = mapped_column(String(100), default=None)
    actor: Mapped[str] = mapped_column(String(320), default="")
    note: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- queries --------------------------------------------------------------------------------------


class SavedQuery(_Entity, Base):
    """A named query of a project over one resource (``items``, ``annotations``, ``datasets``):
    DQL text, a Dataloop JSON query (``filter``), or both (ANDed); run by name where that resource
    is listed or changed in bulk. Checked when saved: graph/domain/saved_queries.py."""

    __tablename__ = "saved_queries"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    resource: Mapped[str] = mapped_column(String(32))
    dql: Mapped[str | None] = mapped_column(Text, default=None)
    filter: Mapped[Any] = mapped_column(Json, default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    creator: Mapped[str] = mapped_column(String(320), default="")


# --- events ---------------------------------------------------------------------------------------


class Event(Base):
    """The outbox: one row per change, written in the transaction that made the change.

    The dispatcher takes undispatched rows in ``seq`` order and flags them in the transaction that
    creates their executions. A flag rather than a high-water mark: on PostgreSQL a transaction
    may commit after one holding a later ``seq``, and a mark would skip its events."""

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "ix_events_undispatched",
            "seq",
            sqlite_where=text("dispatched = 0"),
            postgresql_where=text("NOT dispatched"),
        ),
    )
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[str | None] = mapped_column(String(24), default=None, index=True)
    resource: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(320), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched: Mapped[bool] = mapped_column(default=False)


# --- compute --------------------------------------------------------------------------------------


class Package(_Entity, Base):
    """Code uploaded to a project as an archive: modules of functions with typed inputs and
    outputs (``spec``, from the archive's manifest). ``revision`` is the latest; each revision's
    archive and spec are kept. Packages shipped by plugins (hook ``register_functions``) have no
    row: every project may deploy them by name."""

    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    creator: Mapped[str] = mapped_column(String(320), default="")


class PackageRevision(Base):
    __tablename__ = "package_revisions"
    package_id: Mapped[str] = mapped_column(
        ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # the archive's bytes in the platform blob store (content addressed)
    blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    creator: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Service(_Entity, Base):
    """A deployed module of a package: its executions run on workers listening to ``queue``."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    package_name: Mapped[str] = mapped_column(String(200))
    # set for an uploaded package (pinned to a revision); None for a plugin's package
    package_id: Mapped[str | None] = mapped_column(
        ForeignKey("packages.id", ondelete="RESTRICT"), default=None, index=True
    )
    package_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    module_name: Mapped[str] = mapped_column(String(200))
    init_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    concurrency: Mapped[int] = mapped_column(Integer, default=10)
    execution_timeout: Mapped[int] = mapped_column(Integer, default=3600)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    on_reset: Mapped[str] = mapped_column(String(16), default="failed")
    queue: Mapped[str] = mapped_column(String(64), default="default")
    active: Mapped[bool] = mapped_column(default=True)
    creator: Mapped[str] = mapped_column(String(320), default="")


class Trigger(_Entity, Base):
    """Runs a service function on events (``type`` event: ``resource``, ``actions``, a DQL filter,
    ``execution_mode`` once or always) or on a schedule (``type`` cron: ``cron``, ``next_at``)."""

    __tablename__ = "triggers"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    function_name: Mapped[str] = mapped_column(String(200))
    input: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resource: Mapped[str | None] = mapped_column(String(32), default=None)
    actions: Mapped[Any] = mapped_column(Json, default=list)
    dql: Mapped[str | None] = mapped_column(Text, default=None)
    filter: Mapped[Any] = mapped_column(Json, default=None)
    execution_mode: Mapped[str] = mapped_column(String(16), default="once")
    cron: Mapped[str | None] = mapped_column(String(200), default=None)
    start_at: Mapped[datetime | None] = mapped_column(default=None)
    end_at: Mapped[datetime | None] = mapped_column(default=None)
    next_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # instants missed while no scheduler ran that still fire when one comes back (latest first)
    max_catch_up: Mapped[int] = mapped_column(Integer, default=1)
    creator: Mapped[str] = mapped_column(String(320), default="")


class Execution(_Entity, Base):
    """One run of a function with its input; the system of record for the work (Redis carries
    only the id). Claimed by a worker with a conditional UPDATE that takes a lease."""

    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_project_id_created_at", "project_id", "created_at"),
        Index("ix_executions_status_lease_until", "status", "lease_until"),
        Index("ix_executions_service_id_status", "service_id", "status"),
    )
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), default=None
    )
    # None for the platform's own functions (clone, merge, sync, bulk updates)
    service_id: Mapped[str | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), default=None
    )
    package_name: Mapped[str] = mapped_column(String(200))
    module_name: Mapped[str] = mapped_column(String(200))
    function_name: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(64))
    trigger_id: Mapped[str | None] = mapped_column(
        ForeignKey("triggers.id", ondelete="SET NULL"), default=None, index=True
    )
    event_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # what makes a trigger's execution unique (per event, per entity, per cron instant)
    dedupe_key: Mapped[str | None] = mapped_column(String(160), default=None, unique=True)
    input: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output: Mapped[Any] = mapped_column(Json, default=None, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="created")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    action: Mapped[str | None] = mapped_column(String(200), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # [{"status", "message", "attempt", "timestamp"}, ...]: every status change, appended in the
    # UPDATE that makes it (graph/domain/executions.py append_status)
    status_log: Mapped[Any] = mapped_column(Json, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    on_reset: Mapped[str] = mapped_column(String(16), default="failed")
    execution_timeout: Mapped[int] = mapped_column(Integer, default=3600)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    to_terminate: Mapped[bool] = mapped_column(default=False)
    job_id: Mapped[str | None] = mapped_column(String(64), default=None)
    queued_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    creator: Mapped[str] = mapped_column(String(320), default="")


class ExecutionLog(Base):
    """The lines an execution's code wrote (``stream`` stdout, stderr, log) and the worker's
    notes about it (``system``), per attempt."""

    __tablename__ = "execution_logs"
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    stream: Mapped[str] = mapped_column(String(16))
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lease(Base):
    """A named role one process holds at a time (the dispatcher, the cron scheduler, the reaper),
    taken and renewed with a conditional UPDATE, lost when not renewed before ``expires_at``."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column()
