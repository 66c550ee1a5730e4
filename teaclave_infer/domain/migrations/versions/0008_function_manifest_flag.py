"""functions: whether a function came with a builder's manifest, stated, not read off the manifest

Before, an empty manifest ({}) meant "registered without one"; a function registered with an
empty manifest earlier (the API took any object) would have changed meaning. Every function
registered before this revision is taken as registered with a manifest, as it was then.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(
            sa.Column("has_manifest", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("has_manifest")
