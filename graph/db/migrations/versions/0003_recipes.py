"""recipes and ontologies

Revision ID: 0003
Revises: 0002

``ontologies`` (a project's label tree and attribute definitions) and ``recipes`` (an ontology,
instructions, custom statuses); ``datasets.recipe_id`` names the recipe a dataset's annotations
are checked against. SQLite adds the column with ``ALTER TABLE ... ADD COLUMN`` and its inline
foreign key: a batch migration would recreate ``datasets``, and dropping the old table with
foreign keys on would delete every item through their cascade. The key has no ON DELETE, as
SQLite reflects none from an inline key; the domain detaches datasets from a recipe it deletes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _entity() -> list[sa.Column]:
    return [
        sa.Column("creator", sa.String(length=320), nullable=False),
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "ontologies",
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("labels", _json(), nullable=False),
        sa.Column("attributes", _json(), nullable=False),
        *_entity(),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_ontologies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ontologies")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_ontologies_project_id_name")),
    )
    op.create_table(
        "recipes",
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("ontology_id", sa.String(length=24), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("statuses", _json(), nullable=False),
        *_entity(),
        sa.ForeignKeyConstraint(
            ["ontology_id"], ["ontologies.id"], name=op.f("fk_recipes_ontology_id_ontologies")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_recipes_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipes")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_recipes_project_id_name")),
    )
    op.create_index(op.f("ix_recipes_ontology_id"), "recipes", ["ontology_id"])
    if op.get_context().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE datasets ADD COLUMN recipe_id VARCHAR(24) "
            "CONSTRAINT fk_datasets_recipe_id_recipes REFERENCES recipes (id)"
        )
    else:
        op.add_column("datasets", sa.Column("recipe_id", sa.String(length=24), nullable=True))
        op.create_foreign_key(
            op.f("fk_datasets_recipe_id_recipes"),
            "datasets",
            "recipes",
            ["recipe_id"],
            ["id"],
        )
    op.create_index(op.f("ix_datasets_recipe_id"), "datasets", ["recipe_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_datasets_recipe_id"), table_name="datasets")
    if op.get_context().dialect.name == "sqlite":
        # SQLite drops a column with its inline foreign key (and never recreates the table)
        op.execute("ALTER TABLE datasets DROP COLUMN recipe_id")
    else:
        op.drop_constraint(op.f("fk_datasets_recipe_id_recipes"), "datasets", type_="foreignkey")
        op.drop_column("datasets", "recipe_id")
    op.drop_index(op.f("ix_recipes_ontology_id"), table_name="recipes")
    op.drop_table("recipes")
    op.drop_table("ontologies")
