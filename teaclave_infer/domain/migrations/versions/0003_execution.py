"""execution: the task queue (lease, attempts), results, key binding, function limits

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("result_kind", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_owner", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("invoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_tasks_result_kind", ["result_kind"])
    with op.batch_alter_table("files") as batch:
        batch.add_column(
            sa.Column("key_file_id", sa.String(length=32), nullable=False, server_default="")
        )
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("limits", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("limits")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("key_file_id")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_result_kind")
        for column in (
            "finished_at",
            "invoked_at",
            "lease_expires",
            "lease_owner",
            "attempts",
            "result_kind",
        ):
            batch.drop_column(column)
