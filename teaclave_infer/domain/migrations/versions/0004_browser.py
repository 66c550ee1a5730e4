"""browser: functions their owners let users run in their own browsers

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("browser", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("browser_weights", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("browser_weights")
        batch.drop_column("browser")
