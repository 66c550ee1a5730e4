"""ownership: uploaded blobs have an owner, co-owners accept, one place one file

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from teaclave_infer.service.urls import UrlError, url_key

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_blobs_owner_id"), "blobs", ["owner_id"], unique=False)
    with op.batch_alter_table("files") as batch:
        batch.add_column(
            sa.Column("url_key", sa.String(length=64), nullable=False, server_default="")
        )
        batch.create_index(batch.f("ix_files_url_key"), ["url_key"], unique=False)
    with op.batch_alter_table("file_owners") as batch:
        batch.add_column(sa.Column("accepted", sa.Boolean(), nullable=False, server_default="1"))
    # Files registered before: their places, so that no one registers another file there.
    # (Blobs uploaded before have no recorded uploader: they stay usable by the files already
    # registered on them, and cannot be registered again.)
    files = sa.table(
        "files",
        sa.column("id", sa.String),
        sa.column("url", sa.Text),
        sa.column("url_key", sa.String),
    )
    bind = op.get_bind()
    for file_id, url in bind.execute(sa.select(files.c.id, files.c.url)).all():
        try:
            key = url_key(url)
        except UrlError:
            continue
        bind.execute(files.update().where(files.c.id == file_id).values(url_key=key))


def downgrade() -> None:
    with op.batch_alter_table("file_owners") as batch:
        batch.drop_column("accepted")
    with op.batch_alter_table("files") as batch:
        batch.drop_index(batch.f("ix_files_url_key"))
        batch.drop_column("url_key")
    op.drop_index(op.f("ix_blobs_owner_id"), table_name="blobs")
    op.drop_table("blobs")
